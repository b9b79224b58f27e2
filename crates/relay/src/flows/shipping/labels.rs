//! Saving the labels: `<labels dir>/<order number>-<n>.<pdf|zpl>`, return labels beside them as
//! `<order number>-return-<n>.<pdf|zpl>`, written atomically.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use nshift_client::models::ListShipmentPdfsPath;
use nshift_client::{DeliveryApi as _, Label, LabelFormat, NshiftClient};

use super::order::{ReturnShipment, ShippingItem};
use super::settings::Settings;
use crate::flows::action::ItemError;
use crate::flows::context::FlowError;

/// nShift answered 404 or 410: the documents expired (after an hour), or the id is unknown.
pub(crate) fn not_found(e: &nshift_client::Error) -> bool {
    e.status().is_some_and(|s| s == 404 || s == 410)
}

/// A file-name-safe form of the order number.
fn file_stem(order_no: &str) -> String {
    order_no
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn extension(format: &LabelFormat) -> &'static str {
    match format {
        LabelFormat::Pdf => "pdf",
        LabelFormat::Zpl => "zpl",
        _ => "bin",
    }
}

/// Numbers the temporary files of this process, so two writes of the same label never share
/// one: a dropped pass's write still running on the blocking pool beside the resumed pass's.
static TEMP_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// crash leaves either the old file, no file, or the whole new file: never half a label.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FlowError> {
    let io = |source: std::io::Error| FlowError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sequence = TEMP_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{}.{sequence}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io)
}

/// Saves the labels of the booking: those that came back with it, or (on a resumed run) the
/// documents nShift still has (they expire after an hour; then the booking stands and the
/// missing labels are noted on the entity: reprint them in nShift). A return booked with the
/// outbound shipment gets its labels saved too (`fresh_return`, or its documents).
pub(crate) async fn save(
    nshift: &NshiftClient,
    settings: &Settings,
    item: &mut ShippingItem,
    fresh: Option<Vec<Label>>,
    fresh_return: Option<Vec<Label>>,
) -> Result<(), ItemError> {
    let booked = item
        .shipment
        .clone()
        .ok_or_else(|| ItemError::permanent("the booking is not recorded"))?;
    let order_no = item
        .order_no
        .clone()
        .ok_or_else(|| ItemError::permanent("the Norce order number is not recorded"))?;
    let labels = match fresh.filter(|l| !l.is_empty()) {
        Some(labels) => labels,
        None => documents_of(nshift, &booked.shipment_ids).await?,
    };
    if labels.is_empty() {
        let reason = "nShift no longer had the label documents (they expire after one hour); reprint them in nShift".to_owned();
        tracing::warn!(order_no = %order_no, "{reason}");
        item.labels_missing = Some(reason);
    } else {
        let paths = write_labels(settings, file_stem(&order_no), labels).await?;
        tracing::info!(order_no = %order_no, count = paths.len(), dir = %settings.labels_dir.display(), "labels saved");
        item.labels = paths;
        item.labels_missing = None;
    }
    if let Some(returned) = item.return_shipment.as_mut()
        && returned.labels.is_empty()
    {
        save_return(nshift, settings, &order_no, returned, fresh_return).await?;
    }
    Ok(())
}

/// Saves the labels of a return shipment as `<order number>-return-<n>.<ext>`: `fresh` ones,
/// else the documents nShift still has; none left is noted in `returned.labels_missing`.
pub(crate) async fn save_return(
    nshift: &NshiftClient,
    settings: &Settings,
    order_no: &str,
    returned: &mut ReturnShipment,
    fresh: Option<Vec<Label>>,
) -> Result<(), ItemError> {
    let labels = match fresh.filter(|l| !l.is_empty()) {
        Some(labels) => labels,
        None => documents_of(nshift, &returned.shipment_ids).await?,
    };
    if labels.is_empty() {
        let reason = "nShift no longer had the return label documents (they expire after one hour); reprint them in nShift".to_owned();
        tracing::warn!(order_no = %order_no, "{reason}");
        returned.labels_missing = Some(reason);
        return Ok(());
    }
    let stem = format!("{}-return", file_stem(order_no));
    let paths = write_labels(settings, stem, labels).await?;
    tracing::info!(order_no = %order_no, count = paths.len(), "return labels saved");
    returned.labels = paths;
    returned.labels_missing = None;
    Ok(())
}

/// The documents nShift still has for `shipment_ids` (expired or unknown ones left out).
async fn documents_of(
    nshift: &NshiftClient,
    shipment_ids: &[String],
) -> Result<Vec<Label>, ItemError> {
    let mut labels = Vec::new();
    for shipment_id in shipment_ids {
        let path = ListShipmentPdfsPath {
            shipment_id: shipment_id.clone(),
        };
        let documents = match nshift.list_shipment_pdfs(&path, &Default::default()).await {
            Ok(documents) => documents,
            Err(e) if not_found(&e) => Vec::new(),
            Err(e) => return Err(ItemError::call("listing the label documents", e)),
        };
        for document in documents {
            match nshift.fetch_document(shipment_id, &document.id).await {
                Ok(label) => labels.push(label),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(ItemError::call("fetching a label document", e)),
            }
        }
    }
    Ok(labels)
}

/// Writes `labels` as `<stem>-<n>.<ext>` in the labels folder; the paths written.
async fn write_labels(
    settings: &Settings,
    stem: String,
    labels: Vec<Label>,
) -> Result<Vec<String>, ItemError> {
    let files: Vec<(PathBuf, _)> = labels
        .into_iter()
        .enumerate()
        .map(|(n, label)| {
            (
                settings
                    .labels_dir
                    .join(format!("{stem}-{}.{}", n + 1, extension(&label.format))),
                label.bytes,
            )
        })
        .collect();
    let paths: Vec<String> = files
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect();
    // The fsync of each file blocks: off the runtime's threads, so the other orders in flight
    // keep moving while the disk catches up.
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .try_for_each(|(path, bytes)| write_atomically(path, bytes))
    })
    .await
    .map_err(|e| FlowError::Io {
        path: settings.labels_dir.display().to_string(),
        source: std::io::Error::other(e),
    })
    .and_then(|written| written)
    .map_err(|e| ItemError::Stop(Box::new(e)))?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_or_unknown_document_is_not_found() {
        let answered = |status: u16| {
            let response = http::Response::builder().status(status);
            let response = response.body(Default::default()).unwrap();
            let failure = nshift_client::HttpFailure::new("GetShipmentPdf", true, &[], &response);
            nshift_client::Error::Failure(nshift_client::Failure::Http(Box::new(failure)))
        };
        assert!(not_found(&answered(404)) && not_found(&answered(410)));
        assert!(!not_found(&answered(403)));
    }

    #[test]
    fn stems_are_safe_and_writes_replace_whole_files() {
        assert_eq!(file_stem("NC-100001"), "NC-100001");
        assert_eq!(file_stem("../x y"), ".._x_y");
        let dir = std::env::temp_dir().join(format!("relay-labels-{}", std::process::id()));
        let path = dir.join("NC-1-1.pdf");
        write_atomically(&path, b"%PDF-1 first").unwrap();
        write_atomically(&path, b"%PDF-1 second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1 second");
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_writes_of_one_label_all_succeed() {
        // A dropped pass's write can still run beside the resumed pass's write of the same label.
        let dir = std::env::temp_dir().join(format!("relay-labels-race-{}", std::process::id()));
        let path = dir.join("NC-2-1.pdf");
        std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|_| {
                    scope
                        .spawn(|| (0..40).try_for_each(|_| write_atomically(&path, b"%PDF-1 same")))
                })
                .collect();
            for writer in writers {
                writer.join().unwrap().unwrap();
            }
        });
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1 same");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
