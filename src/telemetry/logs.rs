//! Logs: `tracing` to stderr, filtered by `--log`, `AUTORMA_LOG` or `RUST_LOG`.

use std::fmt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};

/// Our crates at `info` (per-photo events are `debug`), everything else at `warn`: ONNX
/// Runtime's chatter stays out, OpenTelemetry's failed exports are seen.
const DEFAULT_FILTER: &str =
    "warn,autorma=info,autorma_classifier=info,autorma_ingest=info,autorma_sink=info,autorma_registry=info";

pub fn init(flag: Option<&str>) {
    let filter = flag
        .map(str::to_string)
        .or_else(|| std::env::var("AUTORMA_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| DEFAULT_FILTER.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter `{filter}` ({e}); using the default");
        EnvFilter::new(DEFAULT_FILTER)
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .fmt_fields(EscapedFields)
        .init();
}

/// The default field format with control characters escaped: a key or a name from outside
/// (a file name with a newline in it) cannot forge a log line or a terminal escape.
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut escaping = Escaping(&mut writer);
        DefaultFields::new().format_fields(Writer::new(&mut escaping), fields)
    }
}

struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn control_characters_in_fields_are_escaped() {
        let mut out = String::new();
        let mut escaping = Escaping(&mut out);
        escaping.write_str("key=inbox/a\nINFO forged\u{1b}[31m.jpg").unwrap();
        assert_eq!(out, "key=inbox/a\\nINFO forged\\u{1b}[31m.jpg");
    }
}
