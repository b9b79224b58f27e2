//! Printed documents: the format recognised from the content, and the inline documents of a
//! print answer decoded into bytes.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use nshift_models::delivery::ShipmentInfo;

/// A document's file format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelFormat {
    /// `application/pdf`.
    Pdf,
    /// Zebra ZPL (`application/zpl`), sent to thermal printers as is.
    Zpl,
    /// Something else, with the media type nShift gave (or `application/octet-stream`).
    Other(String),
}

impl LabelFormat {
    /// The media type.
    pub fn media_type(&self) -> &str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Zpl => "application/zpl",
            Self::Other(media_type) => media_type,
        }
    }

    /// Recognises the format from the content, else from a declared media type or file type:
    /// nShift's declared types are not reliable for thermal targets.
    pub(crate) fn detect(bytes: &[u8], declared: Option<&str>) -> Self {
        let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
        let content = &bytes[start.unwrap_or(0)..];
        if content.starts_with(b"%PDF") {
            return Self::Pdf;
        }
        if content.starts_with(b"^XA") || content.starts_with(b"~") {
            return Self::Zpl;
        }
        match declared.map(|d| d.split(';').next().unwrap_or(d).trim().to_ascii_lowercase()) {
            Some(d) if d == "application/pdf" || d == "pdf" => Self::Pdf,
            Some(d) if d.contains("zpl") => Self::Zpl,
            Some(d) if !d.is_empty() => Self::Other(d),
            _ => Self::Other("application/octet-stream".to_owned()),
        }
    }
}

/// A printed document (label, waybill, customs paper) decoded into bytes. `Debug` shows the
/// length, not the bytes.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Label {
    /// nShift's document id, when known.
    pub id: Option<String>,
    /// What it is, e.g. `Label`.
    pub description: Option<String>,
    /// PDF or ZPL.
    pub format: LabelFormat,
    /// The file.
    pub bytes: Bytes,
}

impl Label {
    /// The media type (`application/pdf`, `application/zpl`, ...).
    pub fn media_type(&self) -> &str {
        self.format.media_type()
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Label")
            .field("id", &self.id)
            .field("description", &self.description)
            .field("format", &self.format)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A shipment created by a print call, with its documents decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PrintedShipment {
    /// nShift's summary (id, parcels with tracking numbers, document links).
    pub info: ShipmentInfo,
    /// The documents that came back inline (empty when nShift only sent links).
    pub labels: Vec<Label>,
}

impl PrintedShipment {
    /// The shipment with its inline documents (`prints[].data`, or the 2016 `pdfs[].pdf`)
    /// decoded; `declared` is the print configuration's file type. Err: why a document is not
    /// base64.
    pub(crate) fn decode(info: ShipmentInfo, declared: Option<&str>) -> Result<Self, String> {
        let prints = info.prints.iter().flatten();
        let prints = prints.map(|p| (p.id.clone(), p.description.clone(), p.data.as_deref()));
        let pdfs = info.pdfs.iter().flatten();
        let pdfs = pdfs.map(|p| (Some(p.id.clone()), p.description.clone(), p.pdf.as_deref()));
        let mut labels = Vec::new();
        for (id, description, data) in prints.chain(pdfs) {
            let Some(data) = data.filter(|d| !d.is_empty()) else {
                continue;
            };
            let base64 = base64::engine::general_purpose::STANDARD.decode(data.trim());
            let bytes = base64.map_err(|e| {
                let id = id.as_deref().unwrap_or("?");
                format!("document {id} is not base64: {e}")
            })?;
            let format = LabelFormat::detect(&bytes, declared);
            let bytes = Bytes::from(bytes);
            labels.push(Label {
                id,
                description,
                format,
                bytes,
            });
        }
        Ok(Self { info, labels })
    }

    /// The carrier parcel (tracking) numbers.
    pub fn parcel_numbers(&self) -> Vec<&str> {
        let parcels = self.info.parcels.iter().flatten();
        parcels.filter_map(|p| p.parcel_no.as_deref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::LabelFormat;

    #[test]
    fn label_format_from_content_then_declared_type() {
        let detect = LabelFormat::detect;
        assert_eq!(detect(b"%PDF-1.4", None), LabelFormat::Pdf);
        let zpl = detect(b"\n^XA^FO50,50^XZ", Some("application/pdf"));
        assert_eq!(zpl, LabelFormat::Zpl);
        let pdf = detect(b"xx", Some("application/pdf; charset=binary"));
        assert_eq!(pdf, LabelFormat::Pdf);
        assert_eq!(detect(b"xx", Some("zpl")), LabelFormat::Zpl);
        let other = detect(b"xx", None);
        assert_eq!(other.media_type(), "application/octet-stream");
    }
}
