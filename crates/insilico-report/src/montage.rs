//! Image montages for receptive fields, filters and dataset exemplars.

use crate::text::{draw_text, fit_px, line_height, text_width};
use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

/// Gap in pixels between tiles and around the border of a montage.
pub const MONTAGE_GAP: u32 = 6;
/// Height in pixels of the label strip under each tile (present when any tile
/// has a non-empty label).
pub const LABEL_HEIGHT: u32 = 20;
/// Height in pixels of the optional title strip on top of a montage.
pub const TITLE_HEIGHT: u32 = 34;

const LABEL_PX: f32 = 14.0;
const TITLE_PX: f32 = 20.0;
const ROW_LABEL_PX: f32 = 16.0;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const TEXT: [u8; 3] = [20, 20, 20];

/// One image to show: `pixels` are channel-major (C, H, W) — the layout of
/// a Burn/PyTorch `[C, H, W]` tensor — with `channels` 1 (grey) or 3 (RGB).
/// Missing pixels (a short `pixels`) and NaN are shown mid-grey.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub pixels: Vec<f32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub label: String,
}

impl Tile {
    /// A tile from CHW pixels.
    pub fn new(
        pixels: Vec<f32>,
        channels: usize,
        height: usize,
        width: usize,
        label: impl Into<String>,
    ) -> Self {
        Self {
            pixels,
            channels,
            height,
            width,
            label: label.into(),
        }
    }

    /// The rectangle of rows `y0..y0 + height` and columns `x0..x0 + width` of every
    /// channel, clipped to the tile (a window reaching past the edge keeps what lies
    /// inside).
    pub fn crop(&self, y0: usize, x0: usize, height: usize, width: usize) -> Tile {
        let (y1, x1) = ((y0 + height).min(self.height), (x0 + width).min(self.width));
        let (y0, x0) = (y0.min(y1), x0.min(x1));
        let plane = self.height * self.width;
        let mut pixels = Vec::with_capacity(self.channels * (y1 - y0) * (x1 - x0));
        for c in 0..self.channels {
            for y in y0..y1 {
                let row = c * plane + y * self.width;
                pixels.extend(
                    (x0..x1).map(|x| self.pixels.get(row + x).copied().unwrap_or(f32::NAN)),
                );
            }
        }
        Tile::new(pixels, self.channels, y1 - y0, x1 - x0, self.label.clone())
    }
}

/// How tile values map to 0..=255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// Min–max over each tile (all channels together): min → 0, max → 255.
    PerTile,
    /// Per tile, 0 → mid-grey (128), −max|v| → black, +max|v| → white. For
    /// filters and reverse-correlation maps.
    Symmetric,
    /// `lo` → 0 and `hi` → 255, values clamped (e.g. `Fixed(0.0, 1.0)` for
    /// images already in [0, 1]).
    Fixed(f32, f32),
}

fn value_map(tile: &Tile, scaling: Scaling) -> impl Fn(f32) -> u8 {
    let finite = tile.pixels.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = match scaling {
        Scaling::PerTile => {
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for v in finite {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            (lo, hi)
        }
        Scaling::Symmetric => {
            let m = finite.fold(0.0f32, |m, v| m.max(v.abs()));
            (-m, m)
        }
        Scaling::Fixed(lo, hi) => (lo, hi),
    };
    move |v: f32| {
        if !v.is_finite() {
            return 128;
        }
        let t = if hi > lo && hi.is_finite() && lo.is_finite() {
            (v - lo) / (hi - lo)
        } else {
            0.5 // constant tile (or all-zero map): mid-grey
        };
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Render one tile to RGB with nearest-neighbour upscaling by `scale`
/// (0 is treated as 1). Output is `width*scale` × `height*scale`.
pub fn tile_to_image(tile: &Tile, scaling: Scaling, scale: u32) -> RgbImage {
    let s = scale.max(1);
    let (h, w) = (tile.height, tile.width);
    let map = value_map(tile, scaling);
    let plane = h * w;
    let get = |c: usize, y: usize, x: usize| {
        tile.pixels
            .get(c * plane + y * w + x)
            .copied()
            .unwrap_or(f32::NAN)
    };
    let mut img = RgbImage::new(w as u32 * s, h as u32 * s);
    for y in 0..h {
        for x in 0..w {
            let px = if tile.channels >= 3 {
                Rgb([map(get(0, y, x)), map(get(1, y, x)), map(get(2, y, x))])
            } else {
                let g = map(get(0, y, x));
                Rgb([g, g, g])
            };
            for dy in 0..s {
                for dx in 0..s {
                    img.put_pixel(x as u32 * s + dx, y as u32 * s + dy, px);
                }
            }
        }
    }
    img
}

fn cell_size(tiles: &[&Tile], scale: u32) -> (u32, u32) {
    let s = scale.max(1);
    let w = tiles.iter().map(|t| t.width as u32 * s).max().unwrap_or(0);
    let h = tiles.iter().map(|t| t.height as u32 * s).max().unwrap_or(0);
    (w, h)
}

/// Shared geometry of the cells of one montage.
struct Cells {
    scaling: Scaling,
    scale: u32,
    /// Cell size in pixels (largest upscaled tile).
    cell: (u32, u32),
    label_h: u32,
}

/// Paste a tile centred in the cell whose top-left is (x, y), then its label
/// centred in the strip below the cell.
fn paste_cell(canvas: &mut RgbImage, tile: &Tile, cells: &Cells, x: u32, y: u32) {
    let Cells {
        scaling,
        scale,
        cell,
        label_h,
    } = *cells;
    let img = tile_to_image(tile, scaling, scale);
    let ox = x + (cell.0 - img.width()) / 2;
    let oy = y + (cell.1 - img.height()) / 2;
    image::imageops::replace(canvas, &img, ox as i64, oy as i64);
    if label_h > 0 && !tile.label.is_empty() {
        let avail = (cell.0 + MONTAGE_GAP - 2) as f32;
        let px = fit_px(&tile.label, LABEL_PX, 8.0, avail);
        let tw = text_width(&tile.label, px);
        let tx = x as f32 + (cell.0 as f32 - tw) / 2.0;
        let ty = (y + cell.1) as f32 + (label_h as f32 - line_height(px)) / 2.0 + 1.0;
        draw_text(canvas, &tile.label, tx, ty, px, TEXT);
    }
}

fn draw_title(canvas: &mut RgbImage, title: &str) {
    let avail = canvas.width() as f32 - 2.0 * MONTAGE_GAP as f32;
    let px = fit_px(title, TITLE_PX, 9.0, avail);
    let tw = text_width(title, px);
    let tx = ((canvas.width() as f32 - tw) / 2.0).max(MONTAGE_GAP as f32);
    let ty = (TITLE_HEIGHT as f32 - line_height(px)) / 2.0 + 2.0;
    draw_text(canvas, title, tx, ty, px, TEXT);
}

/// Grid of tiles on white, `cols` per row, with label text under each tile
/// and an optional title strip on top.
///
/// Every cell is as large as the largest upscaled tile (smaller tiles are
/// centred). With `n` tiles, `c = cols.clamp(1, max(n, 1))` columns and
/// `r = ceil(n / c)` rows, the image is
/// `c*cell_w + (c+1)*MONTAGE_GAP` wide and
/// `title_h + r*(cell_h + label_h) + (r+1)*MONTAGE_GAP` high, where
/// `title_h` is [`TITLE_HEIGHT`] when `title` is given (else 0) and `label_h`
/// is [`LABEL_HEIGHT`] when any tile has a label (else 0).
pub fn montage(
    tiles: &[Tile],
    cols: usize,
    scaling: Scaling,
    scale: u32,
    title: Option<&str>,
) -> RgbImage {
    let n = tiles.len();
    let c = cols.clamp(1, n.max(1));
    let r = n.div_ceil(c);
    let refs: Vec<&Tile> = tiles.iter().collect();
    let (cw, ch) = cell_size(&refs, scale);
    let label_h = if tiles.iter().any(|t| !t.label.is_empty()) {
        LABEL_HEIGHT
    } else {
        0
    };
    let title_h = if title.is_some() { TITLE_HEIGHT } else { 0 };
    let g = MONTAGE_GAP;
    let width = c as u32 * cw + (c as u32 + 1) * g;
    let height = title_h + r as u32 * (ch + label_h) + (r as u32 + 1) * g;
    let mut canvas = RgbImage::from_pixel(width.max(1), height.max(1), BACKGROUND);
    if let Some(t) = title {
        draw_title(&mut canvas, t);
    }
    let cells = Cells {
        scaling,
        scale,
        cell: (cw, ch),
        label_h,
    };
    for (i, tile) in tiles.iter().enumerate() {
        let (row, col) = ((i / c) as u32, (i % c) as u32);
        let x = g + col * (cw + g);
        let y = title_h + g + row * (ch + label_h + g);
        paste_cell(&mut canvas, tile, &cells, x, y);
    }
    canvas
}

/// One row per unit (e.g. its synthesized image, then its top-k dataset
/// exemplars), with the row label at the left and tile labels underneath.
/// Cells are as large as the largest tile; rows may have different lengths.
pub fn side_by_side(rows: &[(String, Vec<Tile>)], scaling: Scaling, scale: u32) -> RgbImage {
    let all: Vec<&Tile> = rows.iter().flat_map(|(_, t)| t.iter()).collect();
    let (cw, ch) = cell_size(&all, scale);
    let label_h = if all.iter().any(|t| !t.label.is_empty()) {
        LABEL_HEIGHT
    } else {
        0
    };
    let g = MONTAGE_GAP;
    let label_w = rows
        .iter()
        .map(|(l, _)| text_width(l, ROW_LABEL_PX).ceil() as u32)
        .max()
        .unwrap_or(0)
        .min(240);
    let label_col = if label_w > 0 { label_w + 2 * g } else { 0 };
    let max_len = rows.iter().map(|(_, t)| t.len()).max().unwrap_or(0) as u32;
    let width = label_col + max_len * (cw + g) + g;
    let height = rows.len() as u32 * (ch + label_h + g) + g;
    let mut canvas = RgbImage::from_pixel(width.max(1), height.max(1), BACKGROUND);
    let cells = Cells {
        scaling,
        scale,
        cell: (cw, ch),
        label_h,
    };
    for (ri, (label, tiles)) in rows.iter().enumerate() {
        let y = g + ri as u32 * (ch + label_h + g);
        if !label.is_empty() {
            let px = fit_px(label, ROW_LABEL_PX, 8.0, label_w as f32);
            let ty = y as f32 + (ch as f32 - line_height(px)) / 2.0;
            draw_text(&mut canvas, label, g as f32, ty, px, TEXT);
        }
        for (ci, tile) in tiles.iter().enumerate() {
            let x = label_col + g + ci as u32 * (cw + g);
            paste_cell(&mut canvas, tile, &cells, x, y);
        }
    }
    canvas
}

/// A block of columns of an [`overview`]: its heading and how its tiles map to grey.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub heading: String,
    pub scaling: Scaling,
}

/// One row of an [`overview`]: a label (lines separated by `\n`) and, per block, its
/// tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewRow {
    pub label: String,
    pub blocks: Vec<Vec<Tile>>,
}

/// Extra space between two blocks of an overview, so that they read as separate panels.
const BLOCK_GAP: u32 = 4 * MONTAGE_GAP;
/// Grey of the one-pixel frame around each overview tile (a white image on the white
/// page still shows its extent).
const FRAME: Rgb<u8> = Rgb([150, 150, 150]);

/// The upscaled width of the widest tile of each block, and its most tiles in a row.
fn block_slots(blocks: usize, rows: &[OverviewRow], s: u32) -> Vec<(u32, usize)> {
    (0..blocks)
        .map(|b| {
            let tiles = rows.iter().filter_map(|r| r.blocks.get(b));
            tiles.fold((0, 0), |(w, n), t| {
                let tw = t.iter().map(|t| t.width as u32 * s).max().unwrap_or(0);
                (w.max(tw), n.max(t.len()))
            })
        })
        .collect()
}

fn draw_frame(canvas: &mut RgbImage, x: u32, y: u32, w: u32, h: u32) {
    let (x0, y0) = (x.saturating_sub(1), y.saturating_sub(1));
    for xx in x0..=(x + w).min(canvas.width() - 1) {
        canvas.put_pixel(xx, y0, FRAME);
        canvas.put_pixel(xx, (y + h).min(canvas.height() - 1), FRAME);
    }
    for yy in y0..=(y + h).min(canvas.height() - 1) {
        canvas.put_pixel(x0, yy, FRAME);
        canvas.put_pixel((x + w).min(canvas.width() - 1), yy, FRAME);
    }
}

/// One figure of several rows (e.g. one per layer) and blocks of columns (e.g. synthesized
/// images, dataset exemplars, reverse correlation), every tile at the same `scale`, so
/// that tiles of different sizes keep their relative size (a receptive field growing
/// with depth shows as growing tiles). Each block has a heading on top; each row its
/// label at the left; each tile its label underneath and a thin grey frame.
pub fn overview(title: &str, blocks: &[Block], rows: &[OverviewRow], scale: u32) -> RgbImage {
    let s = scale.max(1);
    let g = MONTAGE_GAP;
    let slots = block_slots(blocks.len(), rows, s);
    let label_lines = |l: &str| l.lines().map(str::to_string).collect::<Vec<_>>();
    let label_w = rows
        .iter()
        .flat_map(|r| label_lines(&r.label))
        .map(|l| text_width(&l, ROW_LABEL_PX).ceil() as u32)
        .max()
        .unwrap_or(0);
    let label_col = label_w + 2 * g;
    let block_w: Vec<u32> = slots.iter().map(|&(w, n)| n as u32 * (w + g)).collect();
    let width = label_col + block_w.iter().sum::<u32>() + blocks.len() as u32 * BLOCK_GAP;
    let heading_h = LABEL_HEIGHT + g;
    let row_h: Vec<u32> = rows
        .iter()
        .map(|r| {
            let tiles = r.blocks.iter().flatten();
            tiles.map(|t| t.height as u32 * s).max().unwrap_or(0) + LABEL_HEIGHT + 2 * g
        })
        .collect();
    let height = TITLE_HEIGHT + heading_h + row_h.iter().sum::<u32>() + g;
    let mut canvas = RgbImage::from_pixel(width.max(1), height.max(1), BACKGROUND);
    draw_title(&mut canvas, title);
    let mut x = label_col;
    let mut block_x = Vec::with_capacity(blocks.len());
    for (b, block) in blocks.iter().enumerate() {
        let px = fit_px(&block.heading, ROW_LABEL_PX, 8.0, block_w[b] as f32);
        let tx = x as f32 + (block_w[b] as f32 - text_width(&block.heading, px)) / 2.0;
        draw_text(
            &mut canvas,
            &block.heading,
            tx,
            TITLE_HEIGHT as f32,
            px,
            TEXT,
        );
        block_x.push(x);
        x += block_w[b] + BLOCK_GAP;
    }
    let mut y = TITLE_HEIGHT + heading_h;
    for (r, row) in rows.iter().enumerate() {
        draw_row_label(
            &mut canvas,
            &label_lines(&row.label),
            g,
            y,
            row_h[r] - LABEL_HEIGHT,
        );
        for (b, tiles) in row.blocks.iter().enumerate().take(blocks.len()) {
            let cells = Cells {
                scaling: blocks[b].scaling,
                scale: s,
                cell: (slots[b].0, row_h[r] - LABEL_HEIGHT - 2 * g),
                label_h: LABEL_HEIGHT,
            };
            for (i, tile) in tiles.iter().enumerate() {
                let cx = block_x[b] + i as u32 * (slots[b].0 + g);
                paste_cell(&mut canvas, tile, &cells, cx, y + g);
                let (tw, th) = (tile.width as u32 * s, tile.height as u32 * s);
                let (ox, oy) = (
                    cx + (cells.cell.0 - tw) / 2,
                    y + g + (cells.cell.1 - th) / 2,
                );
                draw_frame(&mut canvas, ox, oy, tw, th);
            }
        }
        y += row_h[r];
    }
    canvas
}

/// A row label of several lines, centred vertically in a band `height` high at `y`.
fn draw_row_label(canvas: &mut RgbImage, lines: &[String], x: u32, y: u32, height: u32) {
    let lh = line_height(ROW_LABEL_PX);
    let top = y as f32 + (height as f32 - lh * lines.len() as f32) / 2.0;
    for (k, line) in lines.iter().enumerate() {
        draw_text(
            canvas,
            line,
            x as f32,
            top + lh * k as f32,
            ROW_LABEL_PX,
            TEXT,
        );
    }
}

/// Encode `img` as PNG and write it atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::write_atomic(path, &encode_png(img)?)
}

pub(crate) fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .context("encoding PNG")?;
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(v: Vec<f32>, c: usize, h: usize, w: usize, label: &str) -> Tile {
        Tile::new(v, c, h, w, label)
    }

    #[test]
    fn symmetric_scaling_maps_zero_to_grey() {
        let t = tile(vec![-2.0, 0.0, 2.0, 1.0], 1, 2, 2, "");
        let img = tile_to_image(&t, Scaling::Symmetric, 1);
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(0, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 1).0, [191, 191, 191]);
        // asymmetric range: -max|v| still black only if present; 0 stays grey
        let t = tile(vec![0.0, 4.0, -1.0], 1, 1, 3, "");
        let img = tile_to_image(&t, Scaling::Symmetric, 1);
        assert_eq!(img.get_pixel(0, 0).0[0], 128);
        assert_eq!(img.get_pixel(1, 0).0[0], 255);
        assert_eq!(img.get_pixel(2, 0).0[0], 96);
        // all zeros: mid-grey, no NaN from 0/0
        let img = tile_to_image(&tile(vec![0.0; 4], 1, 2, 2, ""), Scaling::Symmetric, 1);
        assert!(img.pixels().all(|p| p.0 == [128, 128, 128]));
    }

    #[test]
    fn per_tile_and_fixed_scaling() {
        let t = tile(vec![3.0, 5.0, 7.0, f32::NAN], 1, 2, 2, "");
        let img = tile_to_image(&t, Scaling::PerTile, 1);
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [128, 128, 128]);
        assert_eq!(img.get_pixel(0, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(1, 1).0, [128, 128, 128], "NaN is mid-grey");
        let img = tile_to_image(&t, Scaling::Fixed(5.0, 6.0), 1);
        assert_eq!(img.get_pixel(0, 0).0[0], 0);
        assert_eq!(img.get_pixel(1, 0).0[0], 0);
        assert_eq!(img.get_pixel(0, 1).0[0], 255);
    }

    #[test]
    fn rgb_is_channel_major_and_upscaled_nearest() {
        // 1x2 RGB image: pixel 0 red, pixel 1 blue. CHW: R plane, G plane, B plane.
        let t = tile(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0], 3, 1, 2, "");
        let img = tile_to_image(&t, Scaling::Fixed(0.0, 1.0), 3);
        assert_eq!(img.dimensions(), (6, 3));
        assert_eq!(img.get_pixel(2, 2).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(3, 0).0, [0, 0, 255]);
    }

    #[test]
    fn montage_dimensions() {
        let g = MONTAGE_GAP;
        let tiles: Vec<Tile> = (0..7)
            .map(|i| tile(vec![i as f32; 25], 1, 5, 5, &format!("unit {i}")))
            .collect();
        let m = montage(&tiles, 3, Scaling::PerTile, 4, None);
        assert_eq!(m.width(), 3 * 20 + 4 * g);
        assert_eq!(m.height(), 3 * (20 + LABEL_HEIGHT) + 4 * g);
        let m = montage(&tiles, 3, Scaling::PerTile, 4, Some("Receptive fields"));
        assert_eq!(m.height(), TITLE_HEIGHT + 3 * (20 + LABEL_HEIGHT) + 4 * g);
        // no labels: no label strip; cols > n clamps to n
        let plain: Vec<Tile> = tiles
            .iter()
            .take(2)
            .map(|t| Tile {
                label: String::new(),
                ..t.clone()
            })
            .collect();
        let m = montage(&plain, 5, Scaling::Symmetric, 2, None);
        assert_eq!(m.dimensions(), (2 * 10 + 3 * g, 10 + 2 * g));
        // the top-left tile sits at (gap, gap) with its upscaled pixels
        assert_eq!(m.get_pixel(g, g).0, [128, 128, 128]);
        assert_eq!(m.get_pixel(0, 0).0, [255, 255, 255]);
        // labels actually draw ink in the strip under a tile
        let m = montage(&tiles[..1], 1, Scaling::PerTile, 8, None);
        let strip_dark = (0..m.width())
            .flat_map(|x| (g + 40..g + 40 + LABEL_HEIGHT).map(move |y| (x, y)))
            .filter(|&(x, y)| m.get_pixel(x, y).0[0] < 128)
            .count();
        assert!(strip_dark > 10, "label text missing");
        // empty input does not panic
        let m = montage(&[], 4, Scaling::PerTile, 2, Some("empty"));
        assert!(m.width() >= 1);
    }

    #[test]
    fn side_by_side_dimensions() {
        let row = |n: usize| {
            (0..n)
                .map(|i| tile(vec![i as f32; 9], 1, 3, 3, "act 1.0"))
                .collect::<Vec<_>>()
        };
        let rows = vec![
            ("unit 3".to_string(), row(4)),
            ("unit 12".to_string(), row(2)),
        ];
        let img = side_by_side(&rows, Scaling::PerTile, 10);
        let g = MONTAGE_GAP;
        assert_eq!(img.height(), 2 * (30 + LABEL_HEIGHT + g) + g);
        let label_w = text_width("unit 12", ROW_LABEL_PX).ceil() as u32;
        assert_eq!(img.width(), label_w + 2 * g + 4 * (30 + g) + g);
    }

    #[test]
    fn crop_takes_the_window_of_every_channel_and_clips_at_the_edge() {
        // 2 channels of 3x4, value = 100 c + 10 y + x.
        let px: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..3).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x) as f32))
            })
            .collect();
        let t = tile(px, 2, 3, 4, "u");
        let c = t.crop(1, 2, 2, 2);
        assert_eq!((c.channels, c.height, c.width), (2, 2, 2));
        assert_eq!(
            c.pixels,
            vec![12.0, 13.0, 22.0, 23.0, 112.0, 113.0, 122.0, 123.0]
        );
        // rows 2..6 and columns 3..8 clip to row 2 and column 3
        let c = t.crop(2, 3, 4, 5);
        assert_eq!(
            (c.height, c.width, c.pixels.clone()),
            (1, 1, vec![23.0, 123.0])
        );
        assert_eq!(c.label, "u");
    }

    #[test]
    fn overview_keeps_tiles_at_one_scale() {
        let g = MONTAGE_GAP;
        let small = tile(vec![0.0; 9], 1, 3, 3, "a");
        let large = tile(vec![1.0; 36], 1, 6, 6, "b");
        let blocks = vec![
            Block {
                heading: "synthesized".into(),
                scaling: Scaling::Fixed(0.0, 1.0),
            },
            Block {
                heading: "noise".into(),
                scaling: Scaling::Symmetric,
            },
        ];
        let rows = vec![
            OverviewRow {
                label: "conv1\n3 px".into(),
                blocks: vec![vec![small.clone(); 2], vec![small.clone()]],
            },
            OverviewRow {
                label: "conv2\n6 px".into(),
                blocks: vec![vec![large.clone(); 2], vec![large.clone()]],
            },
        ];
        let img = overview("t", &blocks, &rows, 4);
        // rows: each as high as its own largest tile, labels and gaps
        let rows_h = (12 + LABEL_HEIGHT + 2 * g) + (24 + LABEL_HEIGHT + 2 * g);
        assert_eq!(img.height(), TITLE_HEIGHT + LABEL_HEIGHT + g + rows_h + g);
        // the small (black) tile of the first row is 12 px wide: count its black pixels
        // on its middle line
        let y = TITLE_HEIGHT + LABEL_HEIGHT + g + g + 6;
        let black = (0..img.width())
            .filter(|&x| img.get_pixel(x, y).0 == [0, 0, 0])
            .count();
        assert_eq!(
            black,
            2 * 12,
            "two 3-pixel tiles at scale 4 in the first block"
        );
    }

    #[test]
    fn save_png_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.png");
        let img = montage(
            &[tile(vec![0.0, 1.0], 1, 1, 2, "x")],
            1,
            Scaling::PerTile,
            5,
            Some("t"),
        );
        save_png(&img, &p).unwrap();
        let back = image::open(&p).unwrap().to_rgb8();
        assert_eq!(back, img);
        crate::assert_no_temp_files(dir.path());
    }
}
