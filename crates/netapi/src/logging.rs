//! Log set-up: lines are formatted on the request's thread and written to standard error by
//! a thread of their own, so a slow terminal, pipe or journal never holds a request up.

use anyhow::bail;
use netapi_server::telemetry::Telemetry;
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines waiting for the writer thread. When that many are queued (the output cannot keep
/// up), requests wait for it rather than lose lines: an access log with gaps misleads.
const QUEUED_LINES: usize = 64 * 1024;

/// Installs the global subscriber, with the OpenTelemetry layer of `telemetry` if given.
/// Keep the guard until the process ends: dropping it writes out the lines still queued.
pub fn init(
    format: &str,
    access_log: bool,
    telemetry: Option<&Telemetry>,
) -> anyhow::Result<WorkerGuard> {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    if !access_log {
        // A static directive: the filter then skips the line at its call site, unformatted.
        filter = filter.add_directive("netapi::access=off".parse()?);
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Standard error, as docs/operations.md says: standard output carries what a command
    // prints for scripts (the key of `admin create-user`).
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("netapi-log")
        .finish(std::io::stderr());
    if let Some(telemetry) = telemetry {
        init_with_telemetry(format, filter, writer, ansi, telemetry)?;
        return Ok(guard);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        // Colour codes only for a terminal: in files and journals they are noise (and cost),
        // and without them the plain formatter below writes the same line for less.
        "text" if ansi => builder.init(),
        "text" => builder
            .event_format(PlainText)
            .fmt_fields(PlainFields)
            .init(),
        "json" => builder.json().flatten_event(true).init(),
        other => bail!("log_format must be text or json, not '{other}'"),
    }
    Ok(guard)
}

/// The same log lines, and beside them the OpenTelemetry layer. Each has a filter of its
/// own: the logs never show the request spans made for tracing (their fields would lengthen
/// every line), and `RUST_LOG` cannot turn tracing off.
fn init_with_telemetry(
    format: &str,
    filter: EnvFilter,
    writer: NonBlocking,
    ansi: bool,
    telemetry: &Telemetry,
) -> anyhow::Result<()> {
    let filter = filter.add_directive(format!("{}=off", netapi_server::telemetry::TARGET).parse()?);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let logs = match format {
        "text" if ansi => logs.boxed(),
        "text" => logs.event_format(PlainText).fmt_fields(PlainFields).boxed(),
        "json" => logs.json().flatten_event(true).boxed(),
        other => bail!("log_format must be text or json, not '{other}'"),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(telemetry.layer())
        .try_init()?;
    Ok(())
}

/// The default text line without colour, written directly:
/// `2026-12-03T22:30:01.123456Z  INFO request{request_id=req_… method=GET path=/v1/users}:
/// netapi::access: handled status=401 millis=0.43`. Field values are still written by the
/// subscriber's own field formatter, exactly as before.
struct PlainText;

impl<S, N> FormatEvent<S, N> for PlainText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write_timestamp(&mut writer, time::OffsetDateTime::now_utc())?;
        let metadata = event.metadata();
        writer.write_str(match *metadata.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields)?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            writer.write_char(' ')?;
        }
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The default field formatter's `name=value` list without its styling: with colour off it
/// still ran every name and `=` through `nu_ansi_term` (about 3,400 instructions of every
/// request's access line). Every value, not only the message, has its terminal control
/// characters escaped as the default escapes the message's.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        let mut text = value.to_string();
        let mut source = value.source();
        if source.is_some() {
            text.push_str(&format!(" {}.sources=[", field.name()));
            let mut first = true;
            while let Some(cause) = source {
                if !first {
                    text.push_str(", ");
                }
                first = false;
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text.push(']');
        }
        self.record_debug(field, &format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.writer.write_char(' ')?;
            }
            if name != "message" {
                self.writer
                    .write_str(name.strip_prefix("r#").unwrap_or(name))?;
                self.writer.write_char('=')?;
            }
            std::fmt::Write::write_fmt(&mut Escaping(&mut self.writer), format_args!("{value:?}"))
        })();
    }
}

/// Writes through, escaping the characters a terminal reads as control sequences (ESC, BEL,
/// BS, FF, DEL and the C1 controls) as `tracing-subscriber` escapes a message's.
struct Escaping<'a, W>(&'a mut W);

impl<W: std::fmt::Write> std::fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        // C1 controls are U+0080 to U+009F, which UTF-8 writes after a 0xC2 byte. Any other
        // C0 control only takes the slow path, which writes it unchanged. Without an early
        // exit the test compiles to a few vector instructions.
        let suspect = text.bytes().fold(false, |seen, b| {
            seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
        });
        if !suspect {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            match c {
                '\u{1b}' => self.0.write_str("\\x1b")?,
                '\u{07}' => self.0.write_str("\\x07")?,
                '\u{08}' => self.0.write_str("\\x08")?,
                '\u{0c}' => self.0.write_str("\\x0c")?,
                '\u{7f}' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// RFC 3339 in UTC with microseconds, as the default formatter writes it. Digits are put in
/// place by hand: `write!` with padded integers cost about 2,000 instructions a line.
fn write_timestamp(
    writer: &mut impl std::fmt::Write,
    at: time::OffsetDateTime,
) -> std::fmt::Result {
    let mut line = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |end: usize, width: usize, value: u32| {
        let mut value = value;
        for at in (end - width..end).rev() {
            line[at] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, 4, u32::try_from(at.year()).unwrap_or(0).min(9999));
    put(7, 2, u32::from(u8::from(at.month())));
    put(10, 2, u32::from(at.day()));
    put(13, 2, u32::from(at.hour()));
    put(16, 2, u32::from(at.minute()));
    put(19, 2, u32::from(at.second()));
    put(26, 6, at.microsecond());
    writer.write_str(std::str::from_utf8(&line).map_err(|_| std::fmt::Error)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn timestamps_are_rfc_3339_with_microseconds() {
        let at =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_764_801_001_123_456_789).unwrap();
        let mut line = String::new();
        write_timestamp(&mut line, at).unwrap();
        assert_eq!(line, "2025-12-03T22:30:01.123456Z");
        // Every field padded with zeros.
        let at =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_767_323_045_000_007_000).unwrap();
        let mut line = String::new();
        write_timestamp(&mut line, at).unwrap();
        assert_eq!(line, "2026-01-02T03:04:05.000007Z");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// An error with a source.
    #[derive(Debug)]
    struct Outer(std::fmt::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// A request's access line, a line outside any span and one whose (Debug) field carries a
    /// terminal escape, as the given subscriber writes them.
    fn lines_of(
        subscriber: impl Subscriber + Send + Sync + 'static,
        out: &Captured,
    ) -> Vec<String> {
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: "netapi::request", "request",
                request_id = %"req_1", method = %"GET", path = %"/v1/users");
            span.in_scope(|| {
                tracing::info!(target: "netapi::access", status = 401u16, millis = 0.5f64, "handled");
            });
            tracing::warn!(target: "netapi::store", attempt = 2, "retrying");
            tracing::error!(target: "netapi::test", note = "a\u{1b}[31mred", "odd input");
            tracing::error!(target: "netapi::test", "a message with \u{1b}[2J and \u{9b}");
            let failure = Outer(std::fmt::Error);
            tracing::warn!(target: "netapi::test", error = &failure as &dyn std::error::Error, r#type = 1, "failed");
            // Last: a Display value with a terminal escape, which only Net API's fields escape.
            tracing::info!(target: "netapi::test", path = %"/a\u{1b}[31m", "shown");
        });
        String::from_utf8(out.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_plain_line_is_the_default_formatters_line_without_colour() {
        let plain = Captured::default();
        let default = Captured::default();
        let ours = lines_of(
            tracing_subscriber::fmt()
                .with_writer(plain.clone())
                .with_ansi(false)
                .event_format(PlainText)
                .fmt_fields(PlainFields)
                .finish(),
            &plain,
        );
        let theirs = lines_of(
            tracing_subscriber::fmt()
                .with_writer(default.clone())
                .with_ansi(false)
                .finish(),
            &default,
        );
        assert_eq!(ours.len(), 6, "{ours:?}");
        assert_eq!(theirs.len(), 6, "{theirs:?}");
        let timestamp = "2026-12-03T22:30:01.123456Z".len();
        for (ours, theirs) in ours.iter().zip(&theirs).take(5) {
            assert_eq!(ours[timestamp..], theirs[timestamp..]);
            assert!(
                time::OffsetDateTime::parse(
                    &ours[..timestamp],
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok()
            );
        }
        assert!(ours[0].ends_with(
            "  INFO request{request_id=req_1 method=GET path=/v1/users}: netapi::access: \
             handled status=401 millis=0.5"
        ));
        assert!(ours[1].ends_with("  WARN netapi::store: retrying attempt=2"));
        // Debug values (`?field`, and strings recorded as such) are escaped as before.
        assert!(
            ours[2].ends_with(r#"odd input note="a\u{1b}[31mred""#),
            "{:?}",
            ours[2]
        );
        assert!(
            ours[3].ends_with(r"a message with \x1b[2J and \u{9b}"),
            "{:?}",
            ours[3]
        );
        assert!(
            ours[4].ends_with("failed error=outer error.sources=[an error occurred when formatting an argument] type=1"),
            "{:?}",
            ours[4]
        );
        assert!(theirs[5].contains('\u{1b}'), "{:?}", theirs[5]);
        assert!(ours[5].ends_with(r"shown path=/a\x1b[31m"), "{:?}", ours[5]);
    }
}
