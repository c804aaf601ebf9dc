//! Log set-up: lines are formatted on the request's thread and written to standard error by
//! a thread of their own, so a slow terminal, pipe or journal never holds a request up.

use anyhow::bail;
use netapi_server::middleware::{AccessLog, CURRENT_REQUEST, RequestContext};
use netapi_server::telemetry::Telemetry;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Layered;
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
    let direct = DirectAccessLog {
        writer: writer.clone(),
        json: format == "json",
        ansi,
    };
    match format {
        "text" => install(PlainFields, PlainText { ansi }, writer, filter, telemetry)?,
        "json" => install(DefaultFields::new(), JsonLine, writer, filter, telemetry)?,
        other => bail!("log_format must be text or json, not '{other}'"),
    }
    // Installed even with `access_log = false`: the filter's directive above turns it off,
    // as it does every other line.
    if !netapi_server::middleware::set_access_log(Box::new(direct)) {
        bail!("the access log was set up twice");
    }
    Ok(guard)
}

/// The global subscriber: log lines by `events` (and `fields`, for the values), written by
/// `writer`, and with `telemetry` its OpenTelemetry layer.
fn install<N, E>(
    fields: N,
    events: E,
    writer: NonBlocking,
    filter: EnvFilter,
    telemetry: Option<&Telemetry>,
) -> anyhow::Result<()>
where
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    E: FormatEvent<Registry, N> + FormatEvent<Layered<EnvFilter, Registry>, N>,
    E: Send + Sync + 'static,
{
    // A macro, not a value: the layer's type names the subscriber it is under.
    macro_rules! lines {
        () => {
            tracing_subscriber::fmt::layer()
                .fmt_fields(fields)
                .event_format(events)
                .with_writer(writer)
        };
    }
    match telemetry {
        // Each layer has a filter of its own: the logs never show the request spans made for
        // tracing, and `RUST_LOG` cannot turn tracing off.
        Some(telemetry) => {
            let filter =
                filter.add_directive(format!("{}=off", netapi_server::telemetry::TARGET).parse()?);
            tracing_subscriber::registry()
                .with(lines!().with_filter(filter))
                .with(telemetry.layer())
                .try_init()?;
        }
        // One filter for the whole subscriber: cheaper per event than a layer's own. The spans
        // made for tracing are off at their call sites: outgoing requests then make no span
        // and carry no `traceparent`.
        None => tracing_subscriber::registry()
            .with(
                filter.add_directive(format!("{}=off", netapi_server::telemetry::TARGET).parse()?),
            )
            .with(lines!())
            .try_init()?,
    }
    Ok(())
}

/// `request{request_id=… method=… path=…}: `: what a text line says of its request.
fn write_request(writer: &mut impl std::fmt::Write, request: &RequestContext) -> std::fmt::Result {
    writer.write_str("request{request_id=")?;
    writer.write_str(&request.id)?;
    writer.write_str(" method=")?;
    writer.write_str(request.method.as_str())?;
    writer.write_str(" path=")?;
    Escaping(&mut *writer).write_str(&request.path)?;
    writer.write_str("}: ")
}

/// `,"span":{…,"name":"request"}`: what a JSON line says of its request.
fn write_json_request(
    writer: &mut impl std::fmt::Write,
    request: &RequestContext,
) -> std::fmt::Result {
    writer.write_str(",\"span\":{\"request_id\":")?;
    write_json(writer, &request.id)?;
    writer.write_str(",\"method\":")?;
    write_json(writer, request.method.as_str())?;
    writer.write_str(",\"path\":")?;
    write_json(writer, &request.path)?;
    writer.write_str(",\"name\":\"request\"}")
}

/// A text line's level, as wide as the default formatter writes it, in colour on a
/// terminal.
fn write_level(writer: &mut impl std::fmt::Write, level: Level, ansi: bool) -> std::fmt::Result {
    let (text, colour) = match level {
        Level::TRACE => (" TRACE ", "35"),
        Level::DEBUG => (" DEBUG ", "34"),
        Level::INFO => ("  INFO ", "32"),
        Level::WARN => ("  WARN ", "33"),
        Level::ERROR => (" ERROR ", "31"),
    };
    if ansi {
        write!(writer, "\x1b[{colour}m{text}\x1b[0m")
    } else {
        writer.write_str(text)
    }
}

/// The default text line, written directly, with the request's context where the default
/// would show a span: `2026-12-03T22:30:01.123456Z  INFO request{request_id=req_… method=GET
/// path=/v1/users}: netapi::access: handled status=401 millis=0.43`. Colour (on a terminal
/// only) marks the level alone; in files and journals codes are noise.
struct PlainText {
    ansi: bool,
}

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
        write_level(&mut writer, *metadata.level(), self.ansi)?;
        CURRENT_REQUEST
            .try_with(|request| write_request(&mut writer, request))
            .unwrap_or(Ok(()))?;
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// One JSON object a line, as `tracing-subscriber`'s flattened JSON writes it, with the
/// request's context as `span`: `{"timestamp":…,"level":"INFO","message":"handled",
/// "status":401,"millis":0.43,"target":"netapi::access","span":{"request_id":…,"method":"GET",
/// "path":"/v1/users","name":"request"}}`.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, time::OffsetDateTime::now_utc())?;
        writer.write_str("\",\"level\":")?;
        write_json(&mut writer, metadata.level().as_str())?;
        let mut fields = JsonFields {
            writer: writer.by_ref(),
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json(&mut writer, metadata.target())?;
        CURRENT_REQUEST
            .try_with(|request| write_json_request(&mut writer, request))
            .unwrap_or(Ok(()))?;
        writer.write_str("}\n")
    }
}

/// The access line written directly: the line [`PlainText`] or [`JsonLine`] makes of the
/// middleware's `netapi::access` event, without the event (see [`AccessLog`]).
struct DirectAccessLog<W> {
    writer: W,
    json: bool,
    ansi: bool,
}

impl<W> AccessLog for DirectAccessLog<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync,
{
    fn handled(&self, request: &RequestContext, status: u16, elapsed: Duration) {
        // `RUST_LOG` still decides (a static directive: answered at the call site).
        if !tracing::enabled!(target: "netapi::access", Level::INFO) {
            return;
        }
        let mut line = String::with_capacity(192);
        // Writing to a String cannot fail.
        let _ = self.line(&mut line, request, status, elapsed);
        // As the event's line would be: a lost line is not the request's failure.
        let _ = self.writer.make_writer().write_all(line.as_bytes());
    }
}

impl<W> DirectAccessLog<W> {
    fn line(
        &self,
        line: &mut String,
        request: &RequestContext,
        status: u16,
        elapsed: Duration,
    ) -> std::fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        if self.json {
            line.push_str("{\"timestamp\":\"");
            write_timestamp(line, now)?;
            line.push_str("\",\"level\":\"INFO\",\"message\":\"handled\",\"status\":");
            push_decimal(line, u64::from(status));
            line.push_str(",\"millis\":");
            push_millis(line, elapsed);
            line.push_str(",\"target\":\"netapi::access\"");
            write_json_request(line, request)?;
            line.push_str("}\n");
        } else {
            write_timestamp(line, now)?;
            write_level(line, Level::INFO, self.ansi)?;
            write_request(line, request)?;
            line.push_str("netapi::access: handled status=");
            push_decimal(line, u64::from(status));
            line.push_str(" millis=");
            push_millis(line, elapsed);
            line.push('\n');
        }
        Ok(())
    }
}

/// `value` in decimal digits.
fn push_decimal(line: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    line.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

/// [`access_millis`] as `f64`'s `Debug` writes it (`0.431`, `12.3`, `5.0`), from integers.
fn push_millis(line: &mut String, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    push_decimal(line, micros / 1000);
    line.push('.');
    let fraction = micros % 1000;
    let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
    let shown = if fraction % 100 == 0 {
        1
    } else if fraction % 10 == 0 {
        2
    } else {
        3
    };
    for digit in &digits[..shown] {
        line.push(char::from(b'0' + *digit as u8));
    }
}

/// A JSON value, escaped as JSON escapes strings (control characters included).
fn write_json(
    writer: &mut impl std::fmt::Write,
    value: &(impl serde::Serialize + ?Sized),
) -> std::fmt::Result {
    writer.write_str(&serde_json::to_string(value).map_err(|_| std::fmt::Error)?)
}

/// An event's fields as `,"name":value` members.
struct JsonFields<'writer> {
    writer: Writer<'writer>,
    result: std::fmt::Result,
}

impl JsonFields<'_> {
    fn member(&mut self, field: &tracing::field::Field, value: &(impl serde::Serialize + ?Sized)) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.result = (|| {
            self.writer.write_char(',')?;
            write_json(&mut self.writer, name.strip_prefix("r#").unwrap_or(name))?;
            self.writer.write_char(':')?;
            write_json(&mut self.writer, value)
        })();
    }
}

impl tracing::field::Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.member(field, value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.member(field, &value);
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.member(field, &value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.member(field, &value);
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.member(field, &value);
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.member(field, &error_text(field, value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.member(field, &format!("{value:?}"));
    }
}

/// An error and its sources, as the default formatter writes them: `outer
/// error.sources=[inner, innermost]`.
fn error_text(field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) -> String {
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
    text
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
        let text = error_text(field, value);
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

    /// How a line written while a request is handled learns of it.
    #[derive(Clone, Copy)]
    enum Context {
        /// As Net API's middleware tells it: [`CURRENT_REQUEST`].
        TaskLocal,
        /// As a span would: the way the default formatter shows a request.
        Span,
    }

    /// A request's access line, a line outside any request and one whose (Debug) field
    /// carries a terminal escape, as the given subscriber writes them.
    fn lines_of(
        subscriber: impl Subscriber + Send + Sync + 'static,
        out: &Captured,
        context: Context,
    ) -> Vec<String> {
        tracing::subscriber::with_default(subscriber, || {
            let access = || {
                tracing::info!(target: "netapi::access", status = 401u16, millis = 0.5f64, "handled");
            };
            match context {
                Context::TaskLocal => CURRENT_REQUEST.sync_scope(
                    RequestContext {
                        id: "req_1".to_owned(),
                        method: axum::http::Method::GET,
                        path: "/v1/users".to_owned(),
                    },
                    access,
                ),
                Context::Span => tracing::info_span!("request",
                    request_id = %"req_1", method = %"GET", path = %"/v1/users")
                .in_scope(access),
            }
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
                .event_format(PlainText { ansi: false })
                .fmt_fields(PlainFields)
                .finish(),
            &plain,
            Context::TaskLocal,
        );
        let theirs = lines_of(
            tracing_subscriber::fmt()
                .with_writer(default.clone())
                .with_ansi(false)
                .finish(),
            &default,
            Context::Span,
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

    #[test]
    fn on_a_terminal_only_the_level_is_coloured() {
        let out = Captured::default();
        let lines = lines_of(
            tracing_subscriber::fmt()
                .with_writer(out.clone())
                .event_format(PlainText { ansi: true })
                .fmt_fields(PlainFields)
                .finish(),
            &out,
            Context::TaskLocal,
        );
        assert!(
            lines[0].ends_with(
                "\u{1b}[32m  INFO \u{1b}[0mrequest{request_id=req_1 method=GET path=/v1/users}: \
                 netapi::access: handled status=401 millis=0.5"
            ),
            "{:?}",
            lines[0]
        );
        assert!(lines[1].contains("\u{1b}[33m  WARN \u{1b}[0mnetapi::store: retrying"));
    }

    #[test]
    fn json_lines_carry_the_request_as_the_default_formatters_span() {
        let ours = Captured::default();
        let default = Captured::default();
        let parse = |lines: Vec<String>| -> Vec<serde_json::Value> {
            lines
                .iter()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        };
        let ours = parse(lines_of(
            tracing_subscriber::fmt()
                .with_writer(ours.clone())
                .event_format(JsonLine)
                .finish(),
            &ours,
            Context::TaskLocal,
        ));
        let theirs = parse(lines_of(
            tracing_subscriber::fmt()
                .with_writer(default.clone())
                .json()
                .flatten_event(true)
                .with_span_list(false)
                .finish(),
            &default,
            Context::Span,
        ));
        assert_eq!(ours.len(), 6);
        assert_eq!(theirs.len(), 6);
        for (ours, theirs) in ours.iter().zip(&theirs) {
            let mut ours = ours.as_object().unwrap().clone();
            let mut theirs = theirs.as_object().unwrap().clone();
            let at = ours.remove("timestamp").unwrap();
            theirs.remove("timestamp").unwrap();
            assert!(
                time::OffsetDateTime::parse(
                    at.as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok()
            );
            // The default writes an error's sources as a field of their own.
            if theirs.contains_key("error") {
                assert_eq!(
                    ours["error"],
                    "outer error.sources=[an error occurred when formatting an argument]"
                );
                continue;
            }
            assert_eq!(ours, theirs);
        }
        assert_eq!(ours[0]["span"]["request_id"], "req_1");
        assert_eq!(ours[0]["span"]["path"], "/v1/users");
        assert_eq!(ours[0]["status"], 401);
        assert_eq!(ours[0]["millis"], 0.5);
        assert!(ours[1].get("span").is_none());
        // Escaped as JSON escapes control characters: no raw ESC reaches a terminal.
        assert_eq!(ours[2]["note"], "a\u{1b}[31mred");
    }

    #[test]
    fn millis_are_written_as_the_events_f64_would_be() {
        let written = |micros: u64| {
            let mut line = String::new();
            push_millis(&mut line, Duration::from_micros(micros));
            line
        };
        let checked = (0..=20_000)
            .chain([99_999, 100_000, 123_456_789, u64::from(u32::MAX), 1 << 50])
            .inspect(|&micros| {
                let elapsed = Duration::from_micros(micros);
                let expected = format!("{:?}", netapi_server::middleware::access_millis(elapsed));
                assert_eq!(written(micros), expected, "{micros} µs");
            })
            .count();
        assert_eq!(checked, 20_006);
        let mut line = String::new();
        push_decimal(&mut line, u64::MAX);
        assert_eq!(line, u64::MAX.to_string());
    }

    /// The access line of a request, once as the event with `events` and once directly.
    fn event_and_direct_lines<E>(events: E, json: bool, ansi: bool) -> (String, String)
    where
        E: FormatEvent<Registry, PlainFields> + Send + Sync + 'static,
    {
        let by_event = Captured::default();
        let direct = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(PlainFields)
                .event_format(events)
                .with_writer(by_event.clone()),
        );
        let log = DirectAccessLog {
            writer: direct.clone(),
            json,
            ansi,
        };
        let request = || RequestContext {
            id: "req_1".to_owned(),
            method: axum::http::Method::DELETE,
            path: "/v1/api-keys/k\u{1b}".to_owned(),
        };
        tracing::subscriber::with_default(subscriber, || {
            CURRENT_REQUEST.sync_scope(request(), || {
                tracing::info!(target: "netapi::access", status = 204u16, millis = 12.3f64, "handled");
            });
            log.handled(&request(), 204, Duration::from_micros(12_300));
        });
        let text = |out: &Captured| String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        (text(&by_event), text(&direct))
    }

    #[test]
    fn the_direct_access_line_is_the_events_line() {
        let timestamp = "2026-12-03T22:30:01.123456Z".len();
        for ansi in [false, true] {
            let (by_event, direct) = event_and_direct_lines(PlainText { ansi }, false, ansi);
            assert!(
                by_event.ends_with("status=204 millis=12.3\n"),
                "{by_event:?}"
            );
            assert!(
                by_event.contains(r"path=/v1/api-keys/k\x1b}"),
                "{by_event:?}"
            );
            assert_eq!(direct[timestamp..], by_event[timestamp..]);
        }
        let (by_event, direct) = event_and_direct_lines(JsonLine, true, false);
        let start = r#"{"timestamp":""#.len() + timestamp;
        assert!(by_event.contains(r#""millis":12.3,"#), "{by_event:?}");
        assert_eq!(direct[start..], by_event[start..]);
        assert_eq!(direct[..start - timestamp], by_event[..start - timestamp]);
    }

    #[test]
    fn a_filter_that_turns_the_access_line_off_holds_for_the_direct_line() {
        let out = Captured::default();
        let log = DirectAccessLog {
            writer: out.clone(),
            json: false,
            ansi: false,
        };
        let request = RequestContext {
            id: "req_1".to_owned(),
            method: axum::http::Method::GET,
            path: "/healthz".to_owned(),
        };
        let quiet = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info,netapi::access=off"))
            .with_writer(Captured::default())
            .finish();
        tracing::subscriber::with_default(quiet, || {
            log.handled(&request, 200, Duration::from_micros(5));
        });
        assert!(out.0.lock().unwrap().is_empty());
        let loud = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(Captured::default())
            .finish();
        tracing::subscriber::with_default(loud, || {
            log.handled(&request, 200, Duration::from_micros(5));
        });
        let line = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            line.ends_with("netapi::access: handled status=200 millis=0.005\n"),
            "{line:?}"
        );
    }
}
