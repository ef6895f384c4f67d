//! [`Redacting`]: a writer that hides passwords ([`denorm_source::redact`])
//! line by line. Everything the binary prints goes through one — the log,
//! `denorm check` and `denorm source uninstall` output, the final error —
//! so that no password of a connection URL or string is ever printed, even
//! one quoted by a driver's error message.

use std::io::{self, Write};

/// Buffers what is written up to each newline and writes the line
/// redacted; the rest is written at [`flush`](Write::flush) or drop.
#[derive(Debug)]
pub struct Redacting<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    pub fn new(inner: W) -> Self {
        Redacting { inner, line: Vec::new() }
    }

    fn write_redacted(&mut self, upto: usize) -> io::Result<()> {
        let text = String::from_utf8_lossy(&self.line[..upto]);
        self.inner.write_all(denorm_source::redact(&text).as_bytes())?;
        self.line.drain(..upto);
        Ok(())
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(last) = self.line.iter().rposition(|&b| b == b'\n') {
            self.write_redacted(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.write_redacted(self.line.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_redacted_even_when_written_in_pieces() {
        let mut out = Vec::new();
        {
            let mut w = Redacting::new(&mut out);
            write!(w, "source postgres://app:s3").unwrap();
            writeln!(w, "cret@db/app refused").unwrap();
            write!(w, "host=db password=hunter2").unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "source postgres://app:***@db/app refused\nhost=db password=***");
    }
}
