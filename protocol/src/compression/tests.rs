#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    (0..200_000u32)
        .flat_map(|i| (i % 251).to_be_bytes())
        .collect()
}

#[test]
fn every_codec_round_trips() {
    let input = sample();
    for codec in Compression::ALL {
        let packed = compress(codec, &input).unwrap();
        let unpacked = decompress(codec, &packed, input.len()).unwrap();
        assert_eq!(unpacked, input, "{codec}");
    }
}

#[test]
fn every_codec_round_trips_empty_input() {
    for codec in Compression::ALL {
        let packed = compress(codec, &[]).unwrap();
        assert_eq!(decompress(codec, &packed, 0).unwrap(), Vec::<u8>::new());
    }
}

#[test]
fn rejects_output_over_the_limit() {
    let input = vec![0u8; 1 << 20];
    for codec in Compression::ALL {
        let packed = compress(codec, &input).unwrap();
        let err = decompress(codec, &packed, 1000).unwrap_err();
        assert!(
            matches!(err, CompressionError::LimitExceeded { limit: 1000, .. }),
            "{codec}: {err}"
        );
    }
}

#[test]
fn reads_raw_snappy_without_xerial_framing() {
    let input = sample();
    let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    assert_eq!(
        decompress(Compression::Snappy, &raw, input.len()).unwrap(),
        input
    );
}

#[test]
fn writes_xerial_snappy_framing() {
    let packed = compress(Compression::Snappy, b"hello").unwrap();
    assert!(packed.starts_with(XERIAL_MAGIC));
}

#[test]
fn xerial_limit_applies_across_blocks() {
    let input = vec![7u8; XERIAL_BLOCK_LEN * 3];
    let packed = compress(Compression::Snappy, &input).unwrap();
    assert!(decompress(Compression::Snappy, &packed, XERIAL_BLOCK_LEN * 2).is_err());
    assert_eq!(
        decompress(Compression::Snappy, &packed, input.len()).unwrap(),
        input
    );
}

#[test]
fn reports_corrupt_payloads() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let err = decompress(codec, b"definitely not compressed", 1 << 20).unwrap_err();
        assert!(matches!(err, CompressionError::Corrupt { .. }), "{codec}");
    }
}

#[test]
fn rejects_unknown_codec_ids() {
    for id in 5..=7 {
        assert!(matches!(
            Compression::from_id(id),
            Err(CompressionError::UnknownCodec(i)) if i == id
        ));
    }
    for codec in Compression::ALL {
        assert_eq!(Compression::from_id(codec.id()).unwrap(), codec);
    }
}

#[test]
fn decoder_hands_out_the_same_bytes_in_tiny_pieces() {
    let input = sample();
    for codec in Compression::ALL {
        let packed = compress(codec, &input).unwrap();
        let mut decoder = Decoder::new(codec, &packed, input.len()).unwrap();
        let mut out = Vec::new();
        let mut piece = [0u8; 7];
        loop {
            let n = decoder.read(&mut piece).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&piece[..n]);
        }
        assert_eq!(out, input, "{codec}");
        assert_eq!(decoder.produced(), input.len());
    }
}

#[test]
fn decoder_stops_at_the_first_byte_past_the_limit() {
    let input = vec![1u8; 100_000];
    for codec in Compression::ALL {
        let packed = compress(codec, &input).unwrap();
        let mut decoder = Decoder::new(codec, &packed, 99_999).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        let err = loop {
            match decoder.read(&mut buf) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert!(total <= 99_999, "{codec}");
        assert!(
            matches!(err, CompressionError::LimitExceeded { limit: 99_999, .. }),
            "{codec}: {err}"
        );
    }
}

#[test]
fn levels_follow_kip_390_ranges_and_change_the_output() {
    assert_eq!(level_range(Compression::Gzip), Some((1, 9)));
    assert_eq!(level_range(Compression::Lz4), Some((1, 17)));
    assert_eq!(level_range(Compression::Zstd), Some((-131_072, 22)));
    assert_eq!(level_range(Compression::Snappy), None);
    assert_eq!(level_range(Compression::None), None);
    let input = sample();
    for (codec, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, -5, 15)] {
        let fast = compress_with_level(codec, Some(low), &input).unwrap();
        let small = compress_with_level(codec, Some(high), &input).unwrap();
        assert_ne!(fast, small, "{codec}");
        assert_eq!(decompress(codec, &fast, input.len()).unwrap(), input);
        assert_eq!(decompress(codec, &small, input.len()).unwrap(), input);
    }
    // gzip's -1 is zlib's default level.
    assert_eq!(
        compress_with_level(Compression::Gzip, Some(-1), &input).unwrap(),
        compress(Compression::Gzip, &input).unwrap()
    );
}

#[test]
fn reads_concatenated_gzip_members_as_the_java_client_does() {
    let mut packed = compress(Compression::Gzip, b"first ").unwrap();
    packed.extend(compress(Compression::Gzip, b"second").unwrap());
    assert_eq!(
        decompress(Compression::Gzip, &packed, 100).unwrap(),
        b"first second"
    );
}

proptest! {
    #[test]
    fn round_trips_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        for codec in Compression::ALL {
            let packed = compress(codec, &data).unwrap();
            prop_assert_eq!(decompress(codec, &packed, data.len()).unwrap(), data.clone());
        }
    }

    #[test]
    fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for codec in Compression::ALL {
            let _ = decompress(codec, &data, 1 << 16);
        }
    }
}

/// A zstd frame that declares 65 bytes of content but holds an empty last
/// block (found by `validate_never_panics_on_mutated_batches`): read in
/// pieces smaller than 65 bytes, the streaming reader reported a clean end,
/// so batch validation accepted a payload that a whole decompression
/// refuses. Every read size must now refuse it.
#[test]
fn zstd_frame_shorter_than_its_declared_size_is_corrupt_at_any_read_size() {
    let frame: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x41, 0x01, 0x00, 0x00];
    for size in [1usize, 8, 64, 65, 4096] {
        let mut decoder = Decoder::new(Compression::Zstd, frame, 1 << 20).unwrap();
        let mut buf = vec![0u8; size];
        let read = decoder.read(&mut buf);
        assert!(
            matches!(
                read,
                Err(CompressionError::Corrupt {
                    codec: Compression::Zstd,
                    ..
                })
            ),
            "read size {size}: {read:?}"
        );
    }
    // The same frame declaring its true size (0) is a valid empty payload.
    let valid: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00];
    let mut decoder = Decoder::new(Compression::Zstd, valid, 1 << 20).unwrap();
    assert_eq!(decoder.read(&mut [0u8; 8]).unwrap(), 0);
}
