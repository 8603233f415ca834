//! A single self-contained HTML page: headings, text, config dumps, inline
//! PNG figures (base64 data URIs) and tables. Reads offline.

use crate::write_atomic;
use anyhow::{Context, Result};
use base64::Engine;
use std::path::Path;

/// Escape text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
body{font-family:-apple-system,'Segoe UI','DejaVu Sans',Helvetica,Arial,sans-serif;\
max-width:980px;margin:2em auto;padding:0 1.2em;color:#222;line-height:1.5;background:#fff}\
h1{font-size:1.8em;border-bottom:2px solid #333;padding-bottom:.2em}\
h2{font-size:1.35em;margin-top:1.8em;border-bottom:1px solid #ccc;padding-bottom:.15em}\
figure{margin:1.5em 0;text-align:center}\
figure img{max-width:100%;height:auto;border:1px solid #e4e4e4}\
figcaption{font-size:.92em;color:#444;margin-top:.4em;text-align:left}\
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:.8em 1em;overflow-x:auto;font-size:.88em}\
table{border-collapse:collapse;margin:1em 0;font-size:.92em;font-variant-numeric:tabular-nums}\
th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left}\
th{border-bottom:2px solid #333;background:#fff}\
tbody tr:nth-child(even){background:#f4f6f8}\
.table-wrap{overflow-x:auto}";

/// Builder for the experiment's HTML report. Text passed to every method is
/// escaped; figures are embedded, so the single file is all a reader needs.
#[derive(Debug, Clone)]
pub struct HtmlReport {
    title: String,
    body: Vec<String>,
    figures: usize,
}

impl HtmlReport {
    /// Start a report; `title` becomes the page title and top heading.
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            body: Vec::new(),
            figures: 0,
        }
    }

    /// Section heading (`<h2>`).
    pub fn heading(&mut self, text: &str) {
        self.body.push(format!("<h2>{}</h2>", escape(text)));
    }

    /// Paragraph of plain text; blank lines start new paragraphs.
    pub fn paragraph(&mut self, text: &str) {
        for para in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
            self.body.push(format!("<p>{}</p>", escape(para.trim())));
        }
    }

    /// Preformatted block, e.g. the run's config TOML.
    pub fn preformatted(&mut self, text: &str) {
        self.body.push(format!("<pre>{}</pre>", escape(text)));
    }

    /// Embed a PNG (read now) as a base64 data URI, numbered "Figure N." with
    /// `caption` below it.
    pub fn image(&mut self, png_path: &Path, caption: &str) -> Result<()> {
        let bytes = std::fs::read(png_path)
            .with_context(|| format!("reading figure {}", png_path.display()))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.figures += 1;
        self.body.push(format!(
            "<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{alt}\">\
             <figcaption><b>Figure {n}.</b> {cap}</figcaption></figure>",
            alt = escape(caption),
            n = self.figures,
            cap = escape(caption),
        ));
        Ok(())
    }

    /// Table with a header row; rows may be ragged (missing cells stay empty).
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let mut s = String::from("<div class=\"table-wrap\"><table>\n<thead><tr>");
        for h in header {
            s.push_str(&format!("<th>{}</th>", escape(h)));
        }
        s.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            s.push_str("<tr>");
            for c in row {
                s.push_str(&format!("<td>{}</td>", escape(c)));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</tbody></table></div>");
        self.body.push(s);
    }

    /// The complete HTML document.
    pub fn to_html(&self) -> String {
        let t = escape(&self.title);
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{t}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{}\n\
             </body>\n</html>\n",
            self.body.join("\n")
        )
    }

    /// Write the page atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_html().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_inlines_images() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("x.png");
        let img = image::RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        crate::save_png(&img, &png).unwrap();

        let mut r = HtmlReport::new("Run <1> & \"friends\"");
        r.heading("<script>alert('h')</script>");
        r.paragraph("a < b && <script>alert(1)</script>");
        r.preformatted("[train]\nlr = \"<0.1>\"");
        r.image(&png, "caption <b>bold</b>").unwrap();
        r.table(&["unit", "<th>"], &[vec!["1".into(), "<td>".into()]]);
        let out = dir.path().join("report.html");
        r.save(&out).unwrap();
        let html = std::fs::read_to_string(&out).unwrap();

        assert!(!html.contains("<script>"), "unescaped script tag");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Run &lt;1&gt; &amp; &quot;friends&quot;"));
        assert!(html.contains("lr = &quot;&lt;0.1&gt;&quot;"));
        assert!(html.contains("<td>&lt;td&gt;</td>"));
        assert!(html.contains("caption &lt;b&gt;bold&lt;/b&gt;"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&png).unwrap());
        assert!(html.contains(&format!("src=\"data:image/png;base64,{b64}\"")));
        assert!(!html.contains("x.png"), "image must be inlined, not linked");
        assert!(r.image(&dir.path().join("missing.png"), "x").is_err());
        crate::assert_no_temp_files(dir.path());
    }
}
