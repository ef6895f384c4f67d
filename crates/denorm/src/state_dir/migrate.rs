//! Opening a directory of an older format: its rows re-packed in place.
//!
//! Formats 1 and 2 stored every double in the row encoding's tag 7; since
//! format 3 a double that is a short decimal has its own, shorter, encoding
//! (`denorm_types::row`), and rows are keyed by their bytes, so a row
//! stored in the old bytes would never match the same row arriving today
//! (a retraction would miss it). [`repack_old_rows`] rewrites every stored
//! row in today's encoding in one commit, before the directory is read:
//!
//! * each table's rows are first checked against its stored checksum (a
//!   mismatch is a reason to rebuild, as at any load);
//! * the rows are re-packed ([`RowRef::repacked`]: the doubles only),
//!   their checksums recomputed;
//! * the change log is dropped and `log_start` moved past it (its entries
//!   hold old bytes; a checkpoint before the migration is not used: the
//!   views are built from the rows);
//! * `format` becomes [`FORMAT`].
//!
//! The re-packing is injective (the old encoding was canonical, and so is
//! the new one), so no two stored rows merge.

use denorm_types::RowRef;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

use super::{log, row_hash, sum_key, FORMAT, META};

/// The formats whose rows are re-packed when opened.
pub(super) const OLD: [u32; 2] = [1, 2];

/// Re-packs the rows of a directory of an [`OLD`] format for `identity`
/// (one of another source, or of the current format, is left for the
/// load's own checks). With `rows` unset (an open that reads no rows)
/// nothing is changed and an old format is a reason not to use it.
pub(super) fn repack_old_rows(db: &Database, identity: &str, rows: bool) -> Result<(), String> {
    let format = match stored_format(db, identity) {
        Some(format) if OLD.contains(&format) => format,
        _ => return Ok(()),
    };
    if !rows {
        return Err(format!("its format is {format}: its rows are re-packed when it is opened with them"));
    }
    let failed = |e: &dyn std::fmt::Display| format!("cannot re-pack its format-{format} rows: {e}");
    let mut tx = db.begin_write().map_err(|e| failed(&e))?;
    tx.set_quick_repair(true);
    let names: Vec<String> = tx
        .list_tables()
        .map_err(|e| failed(&e))?
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with("rows/"))
        .collect();
    {
        let mut meta = tx.open_table(META).map_err(|e| failed(&e))?;
        for name in &names {
            let table = &name["rows/".len()..];
            let key = sum_key(table);
            let expected = meta
                .get(key.as_str())
                .map_err(|e| failed(&e))?
                .and_then(|v| v.value().try_into().ok())
                .map_or(0, u64::from_le_bytes);
            let mut t = tx.open_table(TableDefinition::<&[u8], u64>::new(name)).map_err(|e| failed(&e))?;
            let mut stored = Vec::with_capacity(t.len().unwrap_or(0) as usize);
            let mut sum = 0u64;
            for entry in t.iter().map_err(|e| failed(&e))? {
                let (row, count) = entry.map_err(|e| failed(&e))?;
                let (bytes, count) = (row.value(), count.value());
                sum = sum.wrapping_add(row_hash(bytes).wrapping_mul(count));
                stored.push((RowRef::from_prefix(bytes, bytes.len()).repacked(), count));
            }
            if sum != expected {
                return Err(format!("the rows of table {table} fail their checksum ({sum:#x}, stored {expected:#x})"));
            }
            t.retain(|_, _| false).map_err(|e| failed(&e))?;
            let mut sum = 0u64;
            for (row, count) in &stored {
                sum = sum.wrapping_add(row_hash(row.as_bytes()).wrapping_mul(*count));
                t.insert(row.as_bytes(), *count).map_err(|e| failed(&e))?;
            }
            meta.insert(key.as_str(), sum.to_le_bytes().as_slice()).map_err(|e| failed(&e))?;
        }
        meta.insert("format", FORMAT.to_le_bytes().as_slice()).map_err(|e| failed(&e))?;
        let (seq, _) = log::read_meta(&meta);
        log::write_meta(&mut meta, seq + 1, seq + 1).map_err(|e| failed(&e))?;
    }
    tx.delete_table(log::LOG).map_err(|e| failed(&e))?;
    tx.commit().map_err(|e| failed(&e))?;
    tracing::info!(format, tables = names.len(), "state directory: rows re-packed to format {FORMAT}");
    Ok(())
}

/// The stored format when the file holds metadata for `identity`.
fn stored_format(db: &Database, identity: &str) -> Option<u32> {
    let tx = db.begin_read().ok()?;
    let meta = tx.open_table(META).ok()?;
    let get = |key: &str| meta.get(key).ok().flatten().map(|v| v.value().to_vec());
    if get("identity")? != identity.as_bytes() {
        return None;
    }
    get("format").and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
}
