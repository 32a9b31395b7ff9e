//! Helpers for tests, here and in other crates (feature `testsuite`).

/// A well-formed PNG whose IHDR claims `w x h` but whose IDAT holds almost nothing: what a
/// decompression bomb's header looks like, in under 100 bytes.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let zlib_empty = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &zlib_empty), (b"IEND", &[])] {
        out.extend((data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend(data);
        out.extend(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// An EXIF block as encoders embed it (TIFF, little endian, without JPEG's `Exif\0\0`) whose one
/// tag is Orientation = `orientation` (1 upright, 6 "rotate 90 clockwise to view", ...).
pub fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00".to_vec(); // header; the first IFD at offset 8
    tiff.extend(1u16.to_le_bytes()); // one entry
    tiff.extend(0x0112u16.to_le_bytes()); // Orientation
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes()); // one value, held in the entry
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    tiff
}

/// `image` encoded as `format` (JPEG at quality 90, PNG, lossless WebP) with `exif` embedded
/// where given: JPEG in an APP1 segment, PNG in eXIf, WebP in its EXIF chunk.
pub fn encode(image: &image::DynamicImage, format: image::ImageFormat, exif: Option<Vec<u8>>) -> Vec<u8> {
    fn write(mut encoder: impl image::ImageEncoder, image: &image::DynamicImage, exif: Option<Vec<u8>>) {
        if let Some(exif) = exif {
            encoder.set_exif_metadata(exif).expect("the format carries EXIF");
        }
        encoder.write_image(image.as_bytes(), image.width(), image.height(), image.color().into()).unwrap();
    }
    let mut out = Vec::new();
    match format {
        image::ImageFormat::Jpeg => {
            write(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90), image, exif)
        }
        image::ImageFormat::Png => write(image::codecs::png::PngEncoder::new(&mut out), image, exif),
        image::ImageFormat::WebP => write(image::codecs::webp::WebPEncoder::new_lossless(&mut out), image, exif),
        other => panic!("no test encoder for {other:?}"),
    }
    out
}

/// The preprocessor the `decode` fuzz target and its regression test run photos through: the
/// production decode path (sniffing, header checks, EXIF orientation, JPEG DCT scaling,
/// letterbox, normalisation), with limits small enough for the fuzzer's time and memory bounds.
pub fn fuzz_preprocessor() -> crate::preprocess::Preprocessor {
    crate::preprocess::Preprocessor {
        size: 64,
        background: [255, 255, 255],
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        limits: crate::preprocess::DecodeLimits { max_pixels: 4_000_000, max_bytes: 1 << 20 },
    }
}
