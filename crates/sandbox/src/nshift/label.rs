//! Shipping documents built in code: a small valid one-page PDF, or ZPL text for thermal printers.

use std::fmt::Write as _;

/// What a label shows.
#[derive(Debug, Clone)]
pub struct LabelContent {
    /// Service name and code.
    pub service: String,
    /// Sender lines.
    pub sender: Vec<String>,
    /// Receiver lines.
    pub receiver: Vec<String>,
    /// Pickup point lines, if any.
    pub agent: Vec<String>,
    /// References (orderNo is not printed; senderReference is).
    pub reference: Option<String>,
    /// Parcel numbers, one per parcel.
    pub parcel_numbers: Vec<String>,
    /// `shipment.test`: TEST is printed over the barcode.
    pub test: bool,
}

impl LabelContent {
    fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("nShift Delivery sandbox - {}", self.service)];
        if self.test {
            lines.push("*** TEST ***".to_owned());
        }
        lines.push(String::new());
        lines.push("FROM:".to_owned());
        lines.extend(self.sender.iter().cloned());
        lines.push(String::new());
        lines.push("TO:".to_owned());
        lines.extend(self.receiver.iter().cloned());
        if !self.agent.is_empty() {
            lines.push(String::new());
            lines.push("PICKUP POINT:".to_owned());
            lines.extend(self.agent.iter().cloned());
        }
        if let Some(reference) = &self.reference {
            lines.push(String::new());
            lines.push(format!("Ref: {reference}"));
        }
        lines.push(String::new());
        let count = self.parcel_numbers.len();
        for (i, number) in self.parcel_numbers.iter().enumerate() {
            lines.push(format!("Parcel {}/{}: {number}", i + 1, count));
        }
        lines
    }
}

/// Page size in points of a print medium (`laser-a4` and unknown media give A4).
pub fn page_size(media: &str) -> (f64, f64) {
    const MM: f64 = 72.0 / 25.4;
    let (w, h) = match media {
        "thermo-se" => (107.0, 251.0),
        "thermo-190" => (107.0, 190.0),
        "thermo-brev3" => (107.0, 72.0),
        "thermo-225" => (107.0, 225.0),
        "laser-a5" => (148.0, 210.0),
        _ => (210.0, 297.0),
    };
    ((w * MM).round(), (h * MM).round())
}

/// A string as a PDF literal: WinAnsi (Latin-1) bytes, with `(`, `)`, `\` and non-ASCII escaped.
fn pdf_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('(');
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) >= 0xA0 && (c as u32) <= 0xFF => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// A one-page PDF 1.4 with the label text (Helvetica), uncompressed so the text is searchable.
pub fn pdf(content: &LabelContent, media: &str) -> Vec<u8> {
    let (width, height) = page_size(media);
    let lines = content.lines();
    let size = if height < 300.0 { 7 } else { 10 };
    let leading = size + 2;
    let mut stream = String::new();
    let _ = write!(
        stream,
        "BT\n/F1 {size} Tf\n{leading} TL\n18 {} Td\n",
        height - 24.0
    );
    for line in &lines {
        let _ = writeln!(stream, "{} Tj T*", pdf_literal(line));
    }
    stream.push_str("ET\n");
    // Bars under the text stand in for the barcode (not scannable).
    let bar_top = (height - 24.0 - (lines.len() as f64 + 2.0) * f64::from(leading)).max(40.0);
    if let Some(first) = content.parcel_numbers.first() {
        let mut x = 18.0;
        for byte in first.bytes() {
            let w = f64::from(1 + byte % 3);
            let _ = writeln!(stream, "{x:.1} {:.1} {w:.1} 30 re f", bar_top - 30.0);
            x += w + 1.5;
            if x > width - 20.0 {
                break;
            }
        }
    }

    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
        ),
        format!("<< /Length {} >>\nstream\n{stream}endstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
    ];
    let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(tail, "{offset:010} 00000 n ");
    }
    let _ = write!(
        tail,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.extend_from_slice(tail.as_bytes());
    out
}

/// ZPL text, one label (`^XA … ^XZ`) per parcel, UTF-8 (`^CI28`).
pub fn zpl(content: &LabelContent) -> Vec<u8> {
    let clean = |s: &str| s.replace(['^', '~'], " ");
    let mut out = String::new();
    let count = content.parcel_numbers.len();
    for (i, number) in content.parcel_numbers.iter().enumerate() {
        out.push_str("^XA\n^CI28\n");
        let _ = writeln!(out, "^FO30,30^A0N,32,32^FD{}^FS", clean(&content.service));
        let mut y = 80;
        if content.test {
            let _ = writeln!(out, "^FO500,30^A0N,40,40^FDTEST^FS");
        }
        for line in content.sender.iter().take(3) {
            let _ = writeln!(out, "^FO30,{y}^A0N,22,22^FD{}^FS", clean(line));
            y += 26;
        }
        y += 20;
        for line in &content.receiver {
            let _ = writeln!(out, "^FO30,{y}^A0N,30,30^FD{}^FS", clean(line));
            y += 34;
        }
        for line in &content.agent {
            let _ = writeln!(out, "^FO30,{y}^A0N,22,22^FD{}^FS", clean(line));
            y += 26;
        }
        if let Some(reference) = &content.reference {
            let _ = writeln!(out, "^FO30,{y}^A0N,22,22^FDRef: {}^FS", clean(reference));
            y += 26;
        }
        let _ = writeln!(
            out,
            "^FO30,{}^A0N,22,22^FDParcel {}/{count}^FS",
            y + 10,
            i + 1
        );
        let _ = writeln!(
            out,
            "^FO30,{}^BY3^BCN,160,Y,N,N^FD{}^FS",
            y + 50,
            clean(number)
        );
        out.push_str("^XZ\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> LabelContent {
        LabelContent {
            service: "PostNord MyPack Collect (P19)".into(),
            sender: vec!["Relay AB".into()],
            receiver: vec!["Åsa (Test)".into(), "41121 GÖTEBORG".into()],
            agent: vec![],
            reference: Some("R1".into()),
            parcel_numbers: vec!["00373500000000000017".into()],
            test: true,
        }
    }

    #[test]
    fn pdf_is_well_formed() {
        let bytes = pdf(&content(), "thermo-190");
        assert!(bytes.starts_with(b"%PDF-1.4"));
        assert!(bytes.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("00373500000000000017"));
        assert!(text.contains("\\305sa \\(Test\\)"));
        // startxref points at the xref table.
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(bytes[start..].starts_with(b"xref"));
        // Every xref offset points at its object.
        let table = &text[text.find("xref\n").unwrap()..];
        for (i, line) in table.lines().skip(3).take(5).enumerate() {
            let offset: usize = line[..10].parse().unwrap();
            assert!(bytes[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()));
        }
    }

    #[test]
    fn zpl_has_one_label_per_parcel() {
        let mut c = content();
        c.parcel_numbers.push("2".into());
        let text = String::from_utf8(zpl(&c)).unwrap();
        assert_eq!(text.matches("^XA").count(), 2);
        assert!(text.contains("^FD00373500000000000017^FS"));
    }
}
