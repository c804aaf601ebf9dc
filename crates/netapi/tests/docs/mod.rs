//! The documentation runs as a test, so that its examples cannot drift from the server.
//!
//! Each file's fenced ```` ```sh ```` blocks run in order in one `bash` session (variables set in
//! one block are there in the next), in a fresh directory, against a fresh server on a fresh
//! SQLite database in that directory (`sqlite://netapi.db`, configured by `netapi.toml` there;
//! `netapi` on the `PATH` is this build's binary). `http://127.0.0.1:8080` (and its URL-encoded form) is replaced with that
//! server's address, which is also its issuer. The convention (summed up in README.md):
//!
//! - Every `sh` block must exit with status 0. Only its standard output is compared.
//! - Its **answer** is the next fenced block when that is `json` or `text` and no heading comes
//!   between. The output must match it:
//!   - `json`: the output is one JSON value equal to the answer, structurally, except that a
//!     string `"..."` matches any value, a string ending in `...` any string that starts with
//!     what comes before it, and *generated values* match any value of the same kind: a
//!     random-looking string (16 or more of `A-Z a-z 0-9 _ -` with a digit, like
//!     `usr_0VcMne1Ccow92OMrLEy0` or a key) matches one of the same length and `xxx_` prefix,
//!     an RFC 3339 time any RFC 3339 time, an integer of 10 digits or more (seconds since the
//!     epoch) any such integer. An object may not have keys the answer lacks, unless the
//!     answer's last line in that object is `...`. `// comments` are ignored.
//!   - `text`: each non-empty line of the answer must appear in the output, in that order
//!     (other lines may come between), after generated values on both sides are reduced to
//!     their kind; `...` in a line matches anything.
//! - Info-string flags: ```` ```sh no-run ```` is not run (it needs a browser, a real domain,
//!   `cargo`, PostgreSQL, the paths of a real deployment...), nor is its answer compared;
//!   ```` ```json no-check ```` after an `sh` block is an illustration, not its answer.
//! - A block inside an HTML comment (`<!-- ... -->`) runs too but is not shown to readers:
//!   it prepares what a reader would have from elsewhere (a key, a signed-in approval).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The address the documentation shows.
const DOC_BASE: &str = "http://127.0.0.1:8080";

struct Block {
    lang: String,
    flags: Vec<String>,
    body: String,
    /// 1-based line of the opening fence, for messages.
    line: usize,
    /// A heading lies between the previous block and this one.
    heading_before: bool,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut heading = false;
    for (number, line) in markdown.lines().enumerate() {
        if let Some(block) = open.as_mut() {
            if line.starts_with("```") {
                out.push(open.take().unwrap());
                heading = false;
            } else {
                block.body.push_str(line);
                block.body.push('\n');
            }
        } else if let Some(info) = line.strip_prefix("```") {
            let mut words = info.split_whitespace().map(str::to_owned);
            open = Some(Block {
                lang: words.next().unwrap_or_default(),
                flags: words.collect(),
                body: String::new(),
                line: number + 1,
                heading_before: heading,
            });
        } else if line.starts_with('#') {
            heading = true;
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    out
}

/// `netapi serve --config netapi.toml` in a fresh directory (so `sqlite://netapi.db` there),
/// whose issuer is its own address; the documentation's `netapi ... --config netapi.toml`
/// commands, run in the same directory, reach the same database.
struct DocServer {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl DocServer {
    fn start(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(netapi_testkit::unique_name(&format!("netapi-docs-{name}-")));
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let base = format!("http://127.0.0.1:{}", netapi_testkit::free_port());
        let config = format!(
            "listen = \"{}\"\nissuer = \"{base}\"\npepper = \"{}\"\n",
            &base["http://".len()..],
            super::PEPPER
        );
        std::fs::write(dir.join("work/netapi.toml"), config).unwrap();
        let mut child = Command::new(super::BIN)
            .args(["serve", "--config", "netapi.toml"])
            .current_dir(dir.join("work"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready once it says it listens; the rest of its log is read and dropped so that it
        // never blocks on a full pipe.
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = log
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("listening on"));
        assert!(started, "the server stopped before listening");
        std::thread::spawn(move || log.for_each(drop));
        Self { child, base, dir }
    }
}

impl Drop for DocServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn docs_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the file's blocks and returns what differs from the documentation.
fn run_doc(relative: &str) -> Vec<String> {
    let path = docs_root().join(relative);
    let markdown = std::fs::read_to_string(&path).unwrap();
    let all = blocks(&markdown);
    // (block index, its answer's index)
    let mut runs: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, block) in all.iter().enumerate() {
        if block.lang != "sh" || block.flags.iter().any(|f| f == "no-run") {
            continue;
        }
        let answer = all.get(i + 1).filter(|next| {
            (next.lang == "json" || next.lang == "text")
                && !next.heading_before
                && !next.flags.iter().any(|f| f == "no-check")
        });
        runs.push((i, answer.map(|_| i + 1)));
    }
    if runs.is_empty() {
        return Vec::new();
    }
    let tools = Command::new("bash")
        .args([
            "-c",
            "command -v curl && command -v jq && command -v openssl && command -v timeout",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    if !tools.success() {
        // A user's machine may lack them; CI installs them (.ci/run), so there it must run.
        assert!(
            std::env::var_os("CI").is_none(),
            "the docs test needs curl, jq, openssl and timeout"
        );
        eprintln!("skipped: {relative} (the docs test needs curl, jq, openssl and timeout)");
        return Vec::new();
    }
    let name = relative.replace(['/', '.'], "-");
    let server = DocServer::start(&name);
    let encoded_doc = DOC_BASE.replace(':', "%3A").replace('/', "%2F");
    let encoded = server.base.replace(':', "%3A").replace('/', "%2F");
    let local = |text: &str| {
        text.replace(DOC_BASE, &server.base)
            .replace(&encoded_doc, &encoded)
    };
    let out = server.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut script = String::from("cd \"$1\"\n");
    for (n, (i, _)) in runs.iter().enumerate() {
        script.push_str(&format!(
            "{{\n{}\n}} >\"$2/{n}.out\" 2>\"$2/{n}.err\" </dev/null\necho $? >\"$2/{n}.rc\"\n",
            local(&all[*i].body)
        ));
    }
    let script_path = server.dir.join("doc.sh");
    std::fs::write(&script_path, script).unwrap();
    // `netapi` is this build's binary.
    let bin_dir = Path::new(super::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = Command::new("timeout")
        .env("PATH", path)
        .args(["120", "bash"])
        .arg(&script_path)
        .arg(server.dir.join("work"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{relative}: the shell session failed ({status})"
    );

    let mut problems = Vec::new();
    for (n, (i, answer)) in runs.iter().enumerate() {
        let block = &all[*i];
        let output = std::fs::read_to_string(out.join(format!("{n}.out"))).unwrap_or_default();
        let errors = std::fs::read_to_string(out.join(format!("{n}.err"))).unwrap_or_default();
        let rc = std::fs::read_to_string(out.join(format!("{n}.rc"))).unwrap_or_default();
        let at = format!("{relative}:{}", block.line);
        if rc.trim() != "0" {
            problems.push(format!(
                "{at}: exit status {}; output:\n{output}{errors}",
                rc.trim()
            ));
            continue;
        }
        let Some(answer) = answer.map(|a| &all[a]) else {
            continue;
        };
        let expected = local(&answer.body);
        let verdict = if answer.lang == "json" {
            compare_json(&expected, &output)
        } else {
            compare_text(&expected, &output)
        };
        if let Err(why) = verdict {
            problems.push(format!(
                "{at}: the output differs from the answer at line {}: {why}\noutput:\n{output}",
                answer.line
            ));
        }
    }
    problems
}

fn check(relative: &str) {
    let problems = run_doc(relative);
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

#[test]
fn readme_examples_run() {
    check("README.md");
}

#[test]
fn quickstart_examples_run() {
    check("docs/quickstart.md");
}

#[test]
fn api_reference_examples_run() {
    check("docs/api.md");
}

#[test]
fn oauth_guide_examples_run() {
    check("docs/oauth.md");
}

#[test]
fn resources_guide_examples_run() {
    check("docs/resources.md");
}

#[test]
fn token_exchange_guide_examples_run() {
    check("docs/token-exchange.md");
}

#[test]
fn operations_examples_run() {
    check("docs/operations.md");
}

#[test]
fn security_examples_run() {
    check("docs/security.md");
}

#[test]
fn dpop_guide_examples_run() {
    check("docs/dpop.md");
}

#[test]
fn forward_auth_examples_run() {
    check("docs/forward-auth.md");
}

#[test]
fn guard_guide_examples_run() {
    check("docs/guard.md");
}

#[test]
fn secret_scanning_examples_run() {
    check("docs/secret-scanning.md");
}

#[test]
fn webhooks_guide_examples_run() {
    check("docs/webhooks.md");
}

#[test]
fn benchmark_examples_run() {
    check("docs/benchmarks.md");
}

// ---- comparison ----

/// The answer as JSON: `// comments` dropped, a `...` member (outside strings) turned into the
/// key that allows more keys.
fn parse_answer(text: &str) -> Result<Value, String> {
    let mut cleaned = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if rest.starts_with("//") {
            rest = &rest[rest.find('\n').unwrap_or(rest.len())..];
            continue;
        } else if let Some(after) = rest.strip_prefix("...") {
            cleaned.push_str("\"...\": \"...\"");
            rest = after;
            continue;
        } else if c == '"' {
            in_string = true;
        }
        cleaned.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&cleaned).map_err(|e| format!("the answer is not JSON: {e}"))
}

fn compare_json(answer: &str, output: &str) -> Result<(), String> {
    let expected = parse_answer(answer)?;
    let actual: Value = serde_json::from_str(output.trim())
        .map_err(|e| format!("the output is not one JSON value: {e}"))?;
    json_matches(&expected, &actual, "$")
}

fn json_matches(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(e), _) if e == "..." => Ok(()),
        (Value::String(e), Value::String(a)) => {
            if e == a
                || e.strip_suffix("...").is_some_and(|p| a.starts_with(p))
                || generated(e)
                    .is_some_and(|kind| generated(a).is_some_and(|a| same_kind(&kind, &a)))
            {
                Ok(())
            } else {
                Err(format!("{at}: expected {e:?}, got {a:?}"))
            }
        }
        (Value::Number(e), Value::Number(a)) if is_epoch(e) && is_epoch(a) => Ok(()),
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e.iter().filter(|(k, _)| *k != "...") {
                let Some(got) = a.get(key) else {
                    return Err(format!("{at}: no key {key:?} in the output"));
                };
                json_matches(value, got, &format!("{at}.{key}"))?;
            }
            if !e.contains_key("...")
                && let Some(extra) = a.keys().find(|k| !e.contains_key(*k))
            {
                return Err(format!(
                    "{at}: the output has key {extra:?}, not in the doc"
                ));
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{at}: expected {expected}, got {actual}"));
            }
            for (n, (e, a)) in e.iter().zip(a).enumerate() {
                json_matches(e, a, &format!("{at}[{n}]"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at}: expected {expected}, got {actual}")),
    }
}

fn is_epoch(n: &serde_json::Number) -> bool {
    n.as_u64().is_some_and(|n| n >= 1_000_000_000)
}

/// The kind of a generated value, or `None` for an ordinary one: RFC 3339 times are one kind;
/// random-looking strings are of their length and `xxx_` prefix.
fn generated(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let time_shape = "dddd-dd-ddTdd:dd:ddZ";
    if b.len() == time_shape.len()
        && time_shape.bytes().zip(b).all(|(shape, c)| match shape {
            b'd' => c.is_ascii_digit(),
            other => other == *c,
        })
    {
        return Some("time".to_owned());
    }
    let random = b.len() >= 16
        && b.iter().any(u8::is_ascii_digit)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if !random {
        return None;
    }
    let prefix = s
        .split_once('_')
        .filter(|(p, _)| p.len() <= 6 && p.bytes().all(|c| c.is_ascii_lowercase()))
        .map_or("", |(p, _)| p);
    Some(format!("{prefix}_{}", b.len()))
}

/// Whether two generated values are of one kind: the same length, and the same id prefix
/// unless one has none (a random base64url value such as a JWK's `x` may contain `_` early,
/// so `h_7ivZ…` must still match a documented `1DLU…`).
fn same_kind(expected: &str, actual: &str) -> bool {
    let split = |k: &str| k.split_once('_').map(|(p, n)| (p.to_owned(), n.to_owned()));
    match (split(expected), split(actual)) {
        (Some((pe, ne)), Some((pa, na))) => {
            ne == na && (pe == pa || pe.is_empty() || pa.is_empty())
        }
        (None, None) => expected == actual,
        _ => false,
    }
}

/// A line with its generated values reduced to their kind (`<usr_24>`, `<time>`).
fn normalize_line(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match generated(word) {
            Some(kind) => out.push_str(&format!("<{kind}>")),
            None => out.push_str(word),
        }
        word.clear();
    };
    let chars: Vec<char> = line.trim_end().chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // A time contains ':' and '-', so look for it before splitting into words.
        let rest: String = chars[i..].iter().take(20).collect();
        if word.is_empty() && generated(&rest).as_deref() == Some("time") {
            out.push_str("<time>");
            i += 20;
            continue;
        }
        let c = chars[i];
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
        i += 1;
    }
    flush(&mut word, &mut out);
    out
}

/// `pattern` with `...` matching anything.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split("...");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (n, part) in parts.iter().enumerate() {
        if n + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn compare_text(answer: &str, output: &str) -> Result<(), String> {
    let actual: Vec<String> = output.lines().map(normalize_line).collect();
    let mut from = 0;
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        let want = normalize_line(line);
        match actual[from..].iter().position(|got| glob(&want, got)) {
            Some(at) => from += at + 1,
            None => return Err(format!("no line {want:?} (in this order)")),
        }
    }
    Ok(())
}

#[test]
fn the_comparison_catches_drift() {
    let key = r#"{"id": "key_0VcMnexHPj15h80AOqJT", "created_at": "2026-11-29T13:01:05Z",
                  "iat": 1795957287, "name": "CI", "token": "eyJ..."}"#;
    let same = r#"{"id":"key_1AbCdexHPj15h80AOqJZ","created_at":"2030-01-01T00:00:00Z",
                   "iat":1895957287,"name":"CI","token":"eyJhbGci.x.y"}"#;
    assert_eq!(compare_json(key, same), Ok(()));
    // A field the doc does not show, a missing one, a different value, another id kind.
    let extra = same.replace(
        r#""name":"CI""#,
        r#""name":"CI","rate_limit_per_minute":null"#,
    );
    assert!(compare_json(key, &extra).is_err());
    assert!(compare_json(key, &same.replace(r#""name":"CI","#, "")).is_err());
    assert!(compare_json(key, &same.replace(r#""CI""#, r#""CD""#)).is_err());
    assert!(compare_json(key, &same.replace("key_1", "usr_1")).is_err());
    // A trailing `...` allows more keys; comments are ignored.
    let open = "{\"name\": \"CI\", // the name\n...\n}";
    assert_eq!(compare_json(open, r#"{"name":"CI","more":1}"#), Ok(()));
    // Text: lines in order, generated values by kind, `...` anything.
    let answer = "HTTP/1.1 401 Unauthorized\nx-request-id: req_0VcMnewrv65dWNk8Ef5K\n";
    let output =
        "HTTP/1.1 401 Unauthorized\r\ndate: x\r\nx-request-id: req_1bcMnewrv65dWNk8Ef5K\r\n";
    assert_eq!(compare_text(answer, output), Ok(()));
    assert!(compare_text(answer, &output.replace("401 Unauthorized", "200 OK")).is_err());
    assert_eq!(compare_text("a: ...z", "a: xyz"), Ok(()));
    // A random base64url value whose start looks like an id prefix is still random.
    assert_eq!(
        compare_json(
            r#"{"x": "1DLU1VOS1cYgprLc3yYYyUnzXmnz0qdxXYa8hoGLHWM"}"#,
            r#"{"x": "h_7ivZ1_r7eVPnslf5Ih0jPWlLxnIfKR6ah3ZsLi2m0"}"#
        ),
        Ok(())
    );
    // Times match times.
    assert_eq!(
        compare_json(
            r#"{"at": "2026-12-03T10:00:00Z"}"#,
            r#"{"at": "2027-01-01T00:00:00Z"}"#
        ),
        Ok(())
    );
    assert!(
        compare_json(
            r#"{"id": "usr_0VcMnd9FgNth80OIhUrW"}"#,
            r#"{"id": "key_0VcMnd9FgNth80OIhUrW"}"#
        )
        .is_err()
    );
}
