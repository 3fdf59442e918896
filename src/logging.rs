//! Log output: one event is one line, whatever clients put in their names.
//!
//! Topic names, group ids, client ids, transactional ids and config values
//! reach log lines in many places, some through error messages. Rather than
//! trust every call site to escape them, the writer behind the subscriber
//! escapes control characters in each formatted event (Rust's `\n`, `\r`,
//! `\u{1b}` escapes), keeping only the event's final newline, so no client
//! value can start a line that looks like the broker's own. Tabs stay; the
//! escape character stays only when the output is a terminal with colours
//! on (the formatter's own colour codes use it).

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Wraps a [`MakeWriter`] so each event is escaped before it is written.
#[derive(Debug, Clone, Copy)]
pub struct EscapingMakeWriter<M> {
    inner: M,
    keep_escape_char: bool,
}

impl<M> EscapingMakeWriter<M> {
    /// `ansi`: whether the formatter colours its output (then ESC is kept).
    pub fn new(inner: M, ansi: bool) -> Self {
        Self {
            inner,
            keep_escape_char: ansi,
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapingMakeWriter<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
            keep_escape_char: self.keep_escape_char,
        }
    }
}

/// Escapes what it is given (one formatted event per `write_all`).
#[derive(Debug)]
pub struct EscapingWriter<W> {
    inner: W,
    keep_escape_char: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(buf);
        let escaped = escape_event(&text, self.keep_escape_char);
        self.inner.write_all(escaped.as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn needs_escape(c: char, keep_escape_char: bool) -> bool {
    match c {
        '\t' => false,
        '\u{1b}' => !keep_escape_char,
        // Unicode's line and paragraph separators end lines in some viewers.
        '\u{2028}' | '\u{2029}' => true,
        c => c.is_control(),
    }
}

/// `event` with every control character escaped except one trailing newline.
pub fn escape_event(event: &str, keep_escape_char: bool) -> Cow<'_, str> {
    let (body, newline) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    if !body.chars().any(|c| needs_escape(c, keep_escape_char)) {
        return Cow::Borrowed(event);
    }
    let mut out = String::with_capacity(event.len() + 16);
    for c in body.chars() {
        if needs_escape(c, keep_escape_char) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str(newline);
    Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_line_is_written_as_it_is() {
        let line = "2026-11-30T07:00:00Z  INFO wharf: topic created topic=orders\tx\n";
        assert!(matches!(escape_event(line, false), Cow::Borrowed(_)));
    }

    #[test]
    fn newlines_inside_an_event_cannot_start_a_forged_line() {
        let line = "INFO group rebalanced group=g\n2026-01-01T00:00:00Z  INFO wharf: forged\r\n";
        let out = escape_event(line, false);
        assert_eq!(out.lines().count(), 1);
        assert!(out.contains("g\\n2026-01-01"));
        assert!(out.ends_with("forged\\r\n"));
    }

    #[test]
    fn terminal_escapes_and_unicode_separators_are_escaped() {
        let out = escape_event("a\u{1b}[2Jb\u{2028}c\u{85}d\n", false);
        assert_eq!(out, "a\\u{1b}[2Jb\\u{2028}c\\u{85}d\n");
        // With colours on, the formatter's own escapes survive.
        let coloured = escape_event("\u{1b}[32mINFO\u{1b}[0m x\ny\n", true);
        assert_eq!(coloured, "\u{1b}[32mINFO\u{1b}[0m x\\ny\n");
    }

    #[test]
    fn the_writer_escapes_each_event() {
        let mut out = Vec::new();
        {
            let mut w = EscapingWriter {
                inner: &mut out,
                keep_escape_char: false,
            };
            w.write_all(b"one\ntwo\n").unwrap();
        }
        assert_eq!(out, b"one\\ntwo\n");
    }
}
