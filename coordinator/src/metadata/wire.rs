//! The primitives of Kafka's flexible-version message encoding, as the
//! metadata records use them: big-endian fixed-width integers, unsigned
//! varints, compact strings and arrays (length + 1, with 0 meaning null),
//! 16-byte UUIDs, and the tagged-field section
//! (`count, then {tag, size, bytes}` per field).
//!
//! The reader never trusts a length: every read checks what is left, and an
//! array's element count is bounded by the bytes remaining before anything is
//! allocated, so garbage input gives a [`RecordError`], never a panic or a
//! huge allocation.

use uuid::Uuid;

use super::records::RecordError;

/// Reads primitives from a byte slice, front to back.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if n > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, RecordError> {
        Ok(self.i8()? != 0)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn uuid(&mut self) -> Result<Uuid, RecordError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    /// An unsigned varint of at most 5 bytes (a u32), as Kafka's
    /// `ByteUtils.readUnsignedVarint` reads it.
    pub(crate) fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [byte] = self.array::<1>()?;
            let low = u32::from(byte & 0x7f);
            if i == 4 && low > 0x0f {
                return Err(RecordError::VarintTooLong);
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::VarintTooLong)
    }

    /// A compact length: `None` for null (0 on the wire), else the length.
    fn compact_len(&mut self) -> Result<Option<usize>, RecordError> {
        let raw = self.uvarint()?;
        if raw == 0 {
            return Ok(None);
        }
        let len = usize::try_from(raw - 1).map_err(|_| RecordError::Truncated)?;
        Ok(Some(len))
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.compact_len()? {
            None => Ok(None),
            Some(len) => {
                let bytes = self.take(len)?;
                let s = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)?;
                Ok(Some(s.to_owned()))
            }
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string()?
            .ok_or(RecordError::UnexpectedNull(field))
    }

    /// Compact (non-null) bytes.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, RecordError> {
        let len = self
            .compact_len()?
            .ok_or(RecordError::UnexpectedNull(field))?;
        Ok(self.take(len)?.to_vec())
    }

    /// A compact array whose elements are at least `min_element` bytes each.
    fn nullable_array<T>(
        &mut self,
        min_element: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, RecordError>,
    ) -> Result<Option<Vec<T>>, RecordError> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        if len.saturating_mul(min_element.max(1)) > self.remaining() {
            return Err(RecordError::Truncated);
        }
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    pub(crate) fn array_of<T>(
        &mut self,
        field: &'static str,
        min_element: usize,
        element: impl FnMut(&mut Self) -> Result<T, RecordError>,
    ) -> Result<Vec<T>, RecordError> {
        self.nullable_array(min_element, element)?
            .ok_or(RecordError::UnexpectedNull(field))
    }

    pub(crate) fn nullable_i32s(&mut self) -> Result<Option<Vec<i32>>, RecordError> {
        self.nullable_array(4, Self::i32)
    }

    pub(crate) fn i32s(&mut self, field: &'static str) -> Result<Vec<i32>, RecordError> {
        self.array_of(field, 4, Self::i32)
    }

    pub(crate) fn nullable_uuids(&mut self) -> Result<Option<Vec<Uuid>>, RecordError> {
        self.nullable_array(16, Self::uuid)
    }

    pub(crate) fn uuids(&mut self, field: &'static str) -> Result<Vec<Uuid>, RecordError> {
        self.array_of(field, 16, Self::uuid)
    }

    /// Reads the tagged-field section, handing each field's bytes to
    /// `field(tag, reader)`. The callback must consume the field's bytes
    /// exactly (or return `Ok(false)` to skip an unknown tag).
    pub(crate) fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, &mut Reader<'a>) -> Result<bool, RecordError>,
    ) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| RecordError::Truncated)?;
            let mut body = Reader::new(self.take(size)?);
            if field(tag, &mut body)? && body.remaining() != 0 {
                return Err(RecordError::TaggedFieldSize(tag));
            }
        }
        Ok(())
    }
}

/// Writes primitives onto a byte vector.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
}

impl Writer {
    pub(crate) fn i8(&mut self, v: i8) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn uuid(&mut self, v: &Uuid) {
        self.out.extend_from_slice(v.as_bytes());
    }

    pub(crate) fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            // Masked to 7 bits, so the cast keeps every bit.
            self.out.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// A compact length (length + 1). Lengths come from in-memory values;
    /// one past u32::MAX cannot be held by a record we could send.
    fn compact_len(&mut self, len: usize) {
        let raw = u32::try_from(len).map_or(u32::MAX, |l| l.saturating_add(1));
        self.uvarint(raw);
    }

    pub(crate) fn string(&mut self, s: &str) {
        self.compact_len(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.compact_len(b.len());
        self.out.extend_from_slice(b);
    }

    pub(crate) fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            None => self.uvarint(0),
            Some(s) => self.string(s),
        }
    }

    pub(crate) fn array<T>(&mut self, items: &[T], mut element: impl FnMut(&mut Self, &T)) {
        self.compact_len(items.len());
        for item in items {
            element(self, item);
        }
    }

    pub(crate) fn i32s(&mut self, items: &[i32]) {
        self.array(items, |w, v| w.i32(*v));
    }

    pub(crate) fn uuids(&mut self, items: &[Uuid]) {
        self.array(items, |w, v| w.uuid(v));
    }
}

/// Collects tagged fields, then writes the section in ascending tag order.
#[derive(Default)]
pub(crate) struct TaggedFields {
    fields: Vec<(u32, Vec<u8>)>,
}

impl TaggedFields {
    pub(crate) fn add(&mut self, tag: u32, write: impl FnOnce(&mut Writer)) {
        let mut w = Writer::default();
        write(&mut w);
        self.fields.push((tag, w.out));
    }

    pub(crate) fn write_to(mut self, w: &mut Writer) {
        self.fields.sort_by_key(|(tag, _)| *tag);
        w.uvarint(u32::try_from(self.fields.len()).unwrap_or(u32::MAX));
        for (tag, bytes) in self.fields {
            w.uvarint(tag);
            w.uvarint(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            w.out.extend_from_slice(&bytes);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_boundaries() {
        for v in [0u32, 1, 127, 128, 16_383, 16_384, u32::MAX] {
            let mut w = Writer::default();
            w.uvarint(v);
            let mut r = Reader::new(&w.out);
            assert_eq!(r.uvarint(), Ok(v));
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn uvarint_of_300_is_two_bytes_low_group_first() {
        let mut w = Writer::default();
        w.uvarint(300);
        assert_eq!(w.out, vec![0xac, 0x02]);
    }

    #[test]
    fn uvarint_longer_than_five_bytes_is_an_error() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.uvarint(), Err(RecordError::VarintTooLong));
    }

    #[test]
    fn array_count_beyond_the_remaining_bytes_is_truncated_not_allocated() {
        // Claims 2^28 int32s with four bytes left.
        let mut r = Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0, 1]);
        assert_eq!(r.i32s("Replicas"), Err(RecordError::Truncated));
    }

    #[test]
    fn null_string_where_a_string_is_required_is_an_error() {
        let mut r = Reader::new(&[0]);
        assert_eq!(r.string("Name"), Err(RecordError::UnexpectedNull("Name")));
    }
}
