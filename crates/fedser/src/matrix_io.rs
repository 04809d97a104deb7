//! Writing feature matrices as CSV (one frame a row, no header) or NumPy `.npy` (float32,
//! C order, shape `[frames, coeffs]`).
//!
//! The `.npy` writer is the ten lines of the format's version 1.0 header; the crates that
//! read and write NumPy files pull in parsers we do not need for writing one dtype.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use fedser_core::FeatureMatrix;

/// Writes `m` as CSV rows with the shortest exact float representation.
pub fn write_csv(m: &FeatureMatrix, mut w: impl Write) -> io::Result<()> {
    let mut line = String::new();
    for row in m.rows() {
        line.clear();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&v.to_string());
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Writes `m` in NumPy's `.npy` format, version 1.0, dtype `<f4`.
pub fn write_npy(m: &FeatureMatrix, mut w: impl Write) -> io::Result<()> {
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.frames(),
        m.coeffs()
    );
    // Magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = unpadded.next_multiple_of(64) - unpadded;
    let header_len = (dict.len() + padding + 1) as u16;
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&header_len.to_le_bytes())?;
    w.write_all(dict.as_bytes())?;
    w.write_all(&vec![b' '; padding])?;
    w.write_all(b"\n")?;
    let mut bytes = Vec::with_capacity(m.as_slice().len() * 4);
    for v in m.as_slice() {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    w.write_all(&bytes)
}

/// Writes `m` to `path`, as `.npy` when the extension says so, CSV otherwise. The file is
/// written beside its final name and renamed into place, so a crash never leaves half a file.
pub fn write_matrix(m: &FeatureMatrix, path: &Path) -> Result<()> {
    let npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let tmp = path.with_extension(format!(
        "{}.partial",
        path.extension().and_then(|e| e.to_str()).unwrap_or("out")
    ));
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = io::BufWriter::new(file);
    if npy {
        write_npy(m, &mut w)
    } else {
        write_csv(m, &mut w)
    }
    .and_then(|()| w.flush())
    .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(w);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_data_follows() {
        let m = FeatureMatrix::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let mut buf = Vec::new();
        write_npy(&m, &mut buf).unwrap();
        assert_eq!(&buf[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([buf[8], buf[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&buf[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)"));
        assert!(header.ends_with('\n'));
        let data = &buf[10 + header_len..];
        assert_eq!(data.len(), 24);
        assert_eq!(f32::from_le_bytes(data[20..24].try_into().unwrap()), 6.5);
    }

    #[test]
    fn csv_rows_round_trip_exactly() {
        let m = FeatureMatrix::new(2, 2, vec![0.1, -2.5e-8, 3.0, 1e10]).unwrap();
        let mut buf = Vec::new();
        write_csv(&m, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let back: Vec<f32> = text
            .lines()
            .flat_map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()))
            .collect();
        assert_eq!(back, m.as_slice());
        assert_eq!(text.lines().count(), 2);
    }
}
