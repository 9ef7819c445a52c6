//! What an image part costs: `OpenAI`'s published rule, with the size read from the image itself.

use base64::Engine;

/// An image part's `detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageDetail {
    /// A fixed 85 tokens, whatever the size.
    Low,
    /// `high` or `auto` (which may choose high: the safe side).
    High,
}

/// `OpenAI`'s published cost of an image: 85 at low detail; otherwise the image is scaled to fit
/// 2048x2048, then its short side to 768, and costs 85 + 170 per 512-pixel tile. Without a size,
/// `unknown`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn image_tokens(detail: ImageDetail, size: Option<(f64, f64)>, unknown: usize) -> usize {
    if detail == ImageDetail::Low {
        return 85;
    }
    let Some((mut width, mut height)) = size.filter(|&(width, height)| width > 0.0 && height > 0.0) else {
        return unknown;
    };
    let longest = width.max(height);
    if longest > 2048.0 {
        (width, height) = (width * 2048.0 / longest, height * 2048.0 / longest);
    }
    let shortest = width.min(height);
    if shortest > 768.0 {
        (width, height) = (width * 768.0 / shortest, height * 768.0 / shortest);
    }
    85 + 170 * (width / 512.0).ceil() as usize * (height / 512.0).ceil() as usize
}

/// Anthropic's published estimate of an image: width x height / 750, after scaling the long edge down to
/// 1568 pixels. Without a size, `unknown`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn anthropic_image_tokens(size: Option<(f64, f64)>, unknown: usize) -> usize {
    let Some((width, height)) = size.filter(|&(width, height)| width > 0.0 && height > 0.0) else {
        return unknown;
    };
    let scale = (1568.0 / width.max(height)).min(1.0);
    (width * scale * height * scale / 750.0) as usize + 1
}

/// The width and height of a PNG, GIF or JPEG image in a base64 data URL, if they can be read.
pub fn image_size(url: &str) -> Option<(f64, f64)> {
    // The header is near the start; a JPEG's frame may follow some metadata.
    const READ_CHARS: usize = 65_536;
    let rest = url.strip_prefix("data:image/")?;
    let (_, data) = rest.split_once(";base64,")?;
    let data = data.get(..data.len().min(READ_CHARS) / 4 * 4)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    header_size(&bytes)
}

fn be16(bytes: &[u8], at: usize) -> Option<f64> {
    let pair = bytes.get(at..at + 2)?;
    Some(f64::from(u16::from_be_bytes([*pair.first()?, *pair.get(1)?])))
}

fn header_size(bytes: &[u8]) -> Option<(f64, f64)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let word = |at: usize| -> Option<f64> {
            let four: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
            Some(f64::from(u32::from_be_bytes(four)))
        };
        return Some((word(16)?, word(20)?));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        let le16 = |at: usize| -> Option<f64> {
            let two: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
            Some(f64::from(u16::from_le_bytes(two)))
        };
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(b"\xff\xd8") {
        // Walk the segments to the first start-of-frame marker.
        let mut at = 2;
        while bytes.get(at) == Some(&0xFF) {
            let marker = *bytes.get(at + 1)?;
            if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                return Some((be16(bytes, at + 7)?, be16(bytes, at + 5)?));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let length = be16(bytes, at + 2)? as usize;
            at += 2 + length;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_url(bytes: &[u8]) -> String {
        format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    #[test]
    fn sizes_are_read_from_png_gif_and_jpeg_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend(1000u32.to_be_bytes());
        png.extend(600u32.to_be_bytes());
        assert_eq!(image_size(&data_url(&png)), Some((1000.0, 600.0)));
        let mut gif = b"GIF89a".to_vec();
        gif.extend(300u16.to_le_bytes());
        gif.extend(200u16.to_le_bytes());
        assert_eq!(image_size(&data_url(&gif)), Some((300.0, 200.0)));
        // SOI, an APP0 segment of 16 bytes, then SOF0 with height 480 and width 640.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
        jpeg.extend([0; 14]);
        jpeg.extend([0xFF, 0xC0, 0, 17, 8]);
        jpeg.extend(480u16.to_be_bytes());
        jpeg.extend(640u16.to_be_bytes());
        assert_eq!(image_size(&data_url(&jpeg)), Some((640.0, 480.0)));
        assert_eq!(image_size("https://example.com/cat.png"), None);
        assert_eq!(image_size("data:image/png;base64,!!!!"), None);
        assert_eq!(image_size(&data_url(b"\xff\xd8\xff")), None);
    }

    #[test]
    fn costs_follow_the_published_tile_rule() {
        assert_eq!(image_tokens(ImageDetail::Low, Some((4096.0, 4096.0)), 765), 85);
        assert_eq!(image_tokens(ImageDetail::High, None, 765), 765);
        // 1024x1024 -> 768x768: 4 tiles.
        assert_eq!(image_tokens(ImageDetail::High, Some((1024.0, 1024.0)), 0), 85 + 170 * 4);
        // 2048x4096 -> 1024x2048 -> 768x1536: 2 x 3 tiles.
        assert_eq!(image_tokens(ImageDetail::High, Some((2048.0, 4096.0)), 0), 85 + 170 * 6);
        assert_eq!(image_tokens(ImageDetail::High, Some((100.0, 100.0)), 0), 85 + 170);
        // Anthropic: 1000x1000 -> 1333 (+1); 3136x1568 -> 1568x784: 1639 (+1).
        assert_eq!(anthropic_image_tokens(Some((1000.0, 1000.0)), 0), 1334);
        assert_eq!(anthropic_image_tokens(Some((3136.0, 1568.0)), 0), 1640);
        assert_eq!(anthropic_image_tokens(None, 1600), 1600);
    }
}
