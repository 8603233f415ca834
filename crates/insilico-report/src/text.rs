//! Text drawn straight onto `image::RgbImage` with the bundled font (used by
//! montages), and registration of the same font with plotters.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::RgbImage;
use std::sync::{Once, OnceLock};

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(crate::FONT_BYTES).expect("bundled font is valid"))
}

/// Register the bundled font with plotters as "sans-serif" (idempotent).
pub(crate) fn ensure_plotters_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use plotters::style::FontStyle;
        for style in [FontStyle::Normal, FontStyle::Bold] {
            if plotters::style::register_font("sans-serif", style, crate::FONT_BYTES).is_err() {
                panic!("bundled font could not be registered with plotters");
            }
        }
    });
}

/// Advance width of `text` in pixels at pixel height `px`.
pub(crate) fn text_width(text: &str, px: f32) -> f32 {
    let f = font().as_scaled(PxScale::from(px));
    let mut w = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let g = f.glyph_id(c);
        if let Some(p) = prev {
            w += f.kern(p, g);
        }
        w += f.h_advance(g);
        prev = Some(g);
    }
    w
}

/// Largest pixel height <= `px` (but >= `min_px`) at which `text` fits in
/// `max_width` pixels.
pub(crate) fn fit_px(text: &str, px: f32, min_px: f32, max_width: f32) -> f32 {
    let w = text_width(text, px);
    if w <= max_width || w <= 0.0 {
        px
    } else {
        (px * max_width / w).max(min_px)
    }
}

/// Draw `text` with its top-left corner at (`x`, `y_top`), alpha-blended;
/// pixels outside the image are clipped.
pub(crate) fn draw_text(
    img: &mut RgbImage,
    text: &str,
    x: f32,
    y_top: f32,
    px: f32,
    color: [u8; 3],
) {
    let f = font().as_scaled(PxScale::from(px));
    let baseline = y_top + f.ascent();
    let mut caret = x;
    let mut prev = None;
    let (w, h) = (img.width() as i32, img.height() as i32);
    for c in text.chars() {
        let gid = f.glyph_id(c);
        if let Some(p) = prev {
            caret += f.kern(p, gid);
        }
        prev = Some(gid);
        let glyph = gid.with_scale_and_position(px, point(caret, baseline));
        caret += f.h_advance(gid);
        if let Some(og) = font().outline_glyph(glyph) {
            let bb = og.px_bounds();
            og.draw(|gx, gy, cov| {
                let (x, y) = (bb.min.x as i32 + gx as i32, bb.min.y as i32 + gy as i32);
                if x < 0 || y < 0 || x >= w || y >= h {
                    return;
                }
                let a = cov.clamp(0.0, 1.0);
                let p = img.get_pixel_mut(x as u32, y as u32);
                for (dst, &src) in p.0.iter_mut().zip(&color) {
                    *dst = (*dst as f32 * (1.0 - a) + src as f32 * a).round() as u8;
                }
            });
        }
    }
}

/// Height in pixels of a line of text at pixel height `px`.
pub(crate) fn line_height(px: f32) -> f32 {
    font().as_scaled(PxScale::from(px)).height()
}
