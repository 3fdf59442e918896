//! Arbitrary bytes as a Produce's records: split into batches, validate each
//! (CRC, records streamed through the decoders), walk and recompress them.
//! The first byte picks a codec to stamp on the input (with the CRC fixed)
//! so the decoders see garbage rather than failing at the CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_protocol::batch::{self, BatchHeader};
use wharf_protocol::compression::Compression;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if pick & 0x80 != 0 && bytes.len() >= batch::HEADER_LEN {
        // Stamp a codec id (0..=7, so unknown ids too) and fix the CRC.
        bytes[22] = (bytes[22] & !0x07) | (pick & 0x07);
        let crc = crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    for item in batch::batches(&bytes) {
        let Ok((header, one)) = item else { break };
        let valid = batch::validate_batch(one, LIMIT).is_ok();
        let mut walked = 0usize;
        let walk = batch::for_each_record(one, &header, LIMIT, |_| {
            walked += 1;
            Ok(())
        });
        if valid {
            assert!(walk.is_ok());
            for to in Compression::ALL {
                let out =
                    batch::recompress(one, to, None, LIMIT).expect("valid batch recompresses");
                let h = BatchHeader::parse(&out).expect("recompressed header");
                batch::validate(&out, LIMIT).expect("recompressed batch validates");
                assert_eq!(h.records_count(), header.records_count());
            }
        }
    }
});

/// CRC-32C (Castagnoli), bitwise: the fuzz crate avoids extra dependencies.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
