//! Turning crontab lines that call `curl` or `wget` into job specs (`cronhook jobs
//! import-crontab`). Pure: text in, specs and refusals out; the caller talks to the API.
//!
//! A line becomes a job when its schedule is five fields or a macro (`@hourly`…) and its command
//! runs `curl` or `wget` (by name or path) with options whose meaning a job can hold: method,
//! headers, body, credentials, timeout, redirects, retries. Trailing redirections and `|| …` are
//! dropped (cronhook records the response itself); anything else the shell or the tool would do
//! that a job cannot (`-k`, `@file` bodies, pipes, `$VAR`, unknown options) refuses the line with
//! the reason, so nothing is imported with a meaning other than the one it had.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::DateTime;
use cronhook_core::net::TargetPolicy;
use cronhook_core::validate::validate_job;
use cronhook_core::{
    AlertPolicy, Concurrency, JobSpec, Misfire, RequestSpec, RetryPolicy, ScheduleSpec, SuccessRule,
};

/// The longest name given to an imported job (before a `-2`, `-3`… suffix).
const MAX_SLUG_CHARS: usize = 80;

/// A line that became a job.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedJob {
    /// 1-based line number in the crontab.
    pub line: usize,
    pub spec: JobSpec,
}

/// A line that did not become a job, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1-based line number in the crontab.
    pub line: usize,
    pub text: String,
    pub why: String,
}

/// What a crontab turned into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Import {
    pub jobs: Vec<ImportedJob>,
    /// Lines that are not jobs (environment settings) or could not be turned, in line order.
    pub refused: Vec<Refused>,
}

/// Reads a whole crontab. Blank lines and comments are skipped silently; environment lines are
/// reported as "not a job" (`CRON_TZ=`/`TZ=` set the time zone of the lines after them).
pub fn parse_crontab(text: &str) -> Import {
    let mut import = Import::default();
    let mut timezone = "UTC".to_owned();
    let mut names = Names::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let refuse = |why: String| Refused {
            line,
            text: trimmed.to_owned(),
            why,
        };
        if let Some((name, value)) = environment_setting(trimmed) {
            let why = if name == "CRON_TZ" || name == "TZ" {
                timezone = value.clone();
                format!(
                    "not a job (sets the time zone of the lines after it to {value:?}; \
                     they are imported with that \"timezone\")"
                )
            } else {
                "not a job (an environment setting; a job's request does not run in a shell)"
                    .to_owned()
            };
            import.refused.push(refuse(why));
            continue;
        }
        match job_from_line(trimmed, &timezone) {
            Ok(mut spec) => {
                spec.name = names.allocate(&slug_of_url(&spec.request.url));
                import.jobs.push(ImportedJob { line, spec });
            }
            Err(why) => import.refused.push(refuse(why)),
        }
    }
    import
}

/// `NAME=value` (or `NAME = value`), with the value unquoted.
fn environment_setting(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return None;
    }
    let value = value.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|quote| {
            value
                .strip_prefix(*quote)
                .and_then(|rest| rest.strip_suffix(*quote))
        })
        .unwrap_or(value);
    Some((name.to_owned(), unquoted.to_owned()))
}

/// One schedule + command line into a spec (named later).
fn job_from_line(line: &str, timezone: &str) -> Result<JobSpec, String> {
    let (cron, command) = split_schedule(line)?;
    let command = crontab_percent_signs(command)?;
    let shell_text = strip_shell_syntax(&command)?;
    let words = shlex::split(&shell_text)
        .ok_or_else(|| "the command's quoting cannot be parsed".to_owned())?;
    let (tool, args) = find_tool(&words)?;
    let draft = match tool {
        Tool::Curl => curl_request(args)?,
        Tool::Wget => wget_request(args)?,
    };
    let mut spec = draft.into_spec(cron, timezone.to_owned())?;
    // Provisional: the caller makes names unique.
    spec.name = slug_of_url(&spec.request.url);
    let policy = TargetPolicy {
        allow_private: true,
        allowed_nets: Vec::new(),
    };
    validate_job(&spec, "job_crontab_import", DateTime::UNIX_EPOCH, &policy)
        .map_err(|error| format!("{}: {}", error.field, error.message))?;
    Ok(spec)
}

/// The schedule (five fields, or a macro) and the command after it.
fn split_schedule(line: &str) -> Result<(String, &str), String> {
    if line.starts_with('@') {
        let (word, rest) = next_field(line);
        if word.eq_ignore_ascii_case("@reboot") {
            return Err(
                "@reboot runs when the machine starts; a cronhook job needs a schedule".to_owned(),
            );
        }
        let rest = rest.trim();
        if rest.is_empty() {
            return Err("has a schedule but no command".to_owned());
        }
        return Ok((word.to_owned(), rest));
    }
    let mut fields = Vec::with_capacity(5);
    let mut rest = line;
    for _ in 0..5 {
        let (field, after) = next_field(rest);
        if field.is_empty() {
            return Err(
                "not a crontab entry (expected five schedule fields or a macro such as @hourly, \
                 then a command)"
                    .to_owned(),
            );
        }
        if tool_of(field).is_some() {
            return Err(format!(
                "has {} schedule fields before the command; cron needs five (minute, hour, \
                 day of month, month, day of week) or a macro such as @hourly",
                fields.len()
            ));
        }
        fields.push(field);
        rest = after;
    }
    let rest = rest.trim();
    if rest.is_empty() {
        return Err("has a schedule but no command".to_owned());
    }
    Ok((fields.join(" "), rest))
}

/// The first whitespace-separated word and what follows it.
fn next_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// cron's own rule: `\%` is a literal `%`; an unescaped `%` ends the command and starts its
/// standard input, which a job cannot give.
fn crontab_percent_signs(command: &str) -> Result<String, String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                out.push('%');
                chars.next();
            }
            '%' => {
                return Err(
                    "an unescaped % in a crontab command starts the command's standard input \
                     (write \\% for a literal %)"
                        .to_owned(),
                );
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// The command without trailing shell syntax a job has no use for: redirections are dropped,
/// and so is `|| …` (it only runs when the request fails). Pipes, `;`, `&&`, `&` and
/// expansions (`$VAR`, `` `…` ``) are refused: the line would mean more than one request.
fn strip_shell_syntax(command: &str) -> Result<String, String> {
    let chars: Vec<char> = command.chars().collect();
    let mut out = String::with_capacity(command.len());
    let mut quote = Quote::None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match quote {
            Quote::Single => {
                if c == '\'' {
                    quote = Quote::None;
                }
                out.push(c);
                i += 1;
            }
            Quote::Double => {
                match c {
                    '\\' => {
                        out.push(c);
                        if let Some(next) = next {
                            out.push(next);
                        }
                        i += 2;
                        continue;
                    }
                    '"' => quote = Quote::None,
                    '$' | '`' if is_expansion(c, next) => return Err(expansion_refusal()),
                    _ => {}
                }
                out.push(c);
                i += 1;
            }
            Quote::None => match c {
                '\\' => {
                    out.push(c);
                    if let Some(next) = next {
                        out.push(next);
                    }
                    i += 2;
                }
                '\'' | '"' => {
                    quote = if c == '\'' {
                        Quote::Single
                    } else {
                        Quote::Double
                    };
                    out.push(c);
                    i += 1;
                }
                '$' | '`' if is_expansion(c, next) => return Err(expansion_refusal()),
                '|' if next == Some('|') => break,
                '|' => {
                    let rest: String = chars[i..].iter().collect();
                    return Err(format!(
                        "pipes the response into another command (`{}`); a job only makes \
                         the request (cronhook records the response)",
                        rest.trim()
                    ));
                }
                ';' => return Err(more_than_one_command(&chars[i..])),
                '&' if next == Some('>') => {
                    i = skip_redirection(&chars, i, &mut out)?;
                }
                '&' => return Err(more_than_one_command(&chars[i..])),
                '>' | '<' => {
                    if c == '<' && next == Some('<') {
                        return Err(
                            "feeds the command a here-document; a job cannot give a command \
                             standard input"
                                .to_owned(),
                        );
                    }
                    i = skip_redirection(&chars, i, &mut out)?;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            },
        }
    }
    if quote != Quote::None {
        return Err("has an unterminated quote".to_owned());
    }
    Ok(out)
}

fn is_expansion(c: char, next: Option<char>) -> bool {
    c == '`'
        || next.is_some_and(|n| n.is_ascii_alphanumeric() || matches!(n, '_' | '{' | '(' | '?'))
}

fn expansion_refusal() -> String {
    "uses shell expansion ($VAR, $(…) or `…`), whose value cronhook cannot know; write the \
     value itself"
        .to_owned()
}

fn more_than_one_command(rest: &[char]) -> String {
    let rest: String = rest.iter().collect();
    format!(
        "runs more than the request (`{}`); a job only makes the request",
        rest.trim()
    )
}

/// Skips a redirection starting at `start` (`>`, `>>`, `<`, `&>`, `2>&1`, `> /dev/null`…),
/// removing a file-descriptor number already copied to `out`; returns the index after it.
fn skip_redirection(chars: &[char], start: usize, out: &mut String) -> Result<usize, String> {
    // A descriptor number written just before the operator (`2>`), as a word of its own.
    let without_digits = out.trim_end_matches(|c: char| c.is_ascii_digit());
    if without_digits.len() < out.len()
        && (without_digits.is_empty() || without_digits.ends_with(char::is_whitespace))
    {
        out.truncate(without_digits.len());
    }
    let mut i = start;
    if chars.get(i) == Some(&'&') {
        i += 1;
    }
    // The operator: `>`, `>>`, `>|`, `<`, `<>`.
    while i < chars.len() && matches!(chars[i], '>' | '<' | '|') && i - start < 3 {
        i += 1;
    }
    // `>&1`, `>&-`: a descriptor, no file.
    if chars.get(i) == Some(&'&') {
        i += 1;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '-') {
            i += 1;
        }
        out.push(' ');
        return Ok(i);
    }
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    // The target file: one word, possibly quoted.
    let target_start = i;
    let mut quote = Quote::None;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Quote::Single if c == '\'' => quote = Quote::None,
            Quote::Double if c == '"' => quote = Quote::None,
            Quote::Single | Quote::Double => {}
            Quote::None => {
                if c.is_whitespace() || matches!(c, '|' | ';' | '&' | '<' | '>') {
                    break;
                }
                if c == '\'' {
                    quote = Quote::Single;
                } else if c == '"' {
                    quote = Quote::Double;
                } else if c == '\\' {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    if i == target_start {
        return Err("has a redirection without a target".to_owned());
    }
    out.push(' ');
    Ok(i.min(chars.len()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Curl,
    Wget,
}

fn tool_of(word: &str) -> Option<Tool> {
    match word.rsplit('/').next().unwrap_or(word) {
        "curl" => Some(Tool::Curl),
        "wget" => Some(Tool::Wget),
        _ => None,
    }
}

/// The tool and its arguments; a system crontab's user column before it is skipped.
fn find_tool(words: &[String]) -> Result<(Tool, &[String]), String> {
    let Some(first) = words.first() else {
        return Err("has no command".to_owned());
    };
    if let Some(tool) = tool_of(first) {
        return Ok((tool, &words[1..]));
    }
    let is_user_name = first
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if is_user_name && let Some(tool) = words.get(1).and_then(|word| tool_of(word)) {
        return Ok((tool, &words[2..]));
    }
    Err(format!(
        "runs `{first}`, not curl or wget; only HTTP requests made with curl or wget can become jobs"
    ))
}

/// One option as written: its long name, its value, and how it was spelled (for messages).
struct Opt {
    name: &'static str,
    value: Option<String>,
    spelled: String,
}

/// How a tool names its options.
struct OptionTable {
    tool: &'static str,
    /// Short letter → long name.
    short: fn(char) -> Option<&'static str>,
    /// Long name → (canonical name, takes a value); `None` for an option not known here.
    long: fn(&str) -> Option<(&'static str, bool)>,
}

/// Splits arguments into options (short clusters like `-fsSL`, `-XPOST`, `--opt value`,
/// `--opt=value`) and positional arguments.
fn scan_options(args: &[String], table: &OptionTable) -> Result<(Vec<Opt>, Vec<String>), String> {
    let mut options = Vec::new();
    let mut positional = Vec::new();
    let mut only_positional = false;
    let mut i = 0;
    let unknown = |spelled: &str| {
        format!(
            "{} option `{spelled}` is not supported (a job cannot reproduce what it does)",
            table.tool
        )
    };
    let missing = |spelled: &str| format!("{} option `{spelled}` needs a value", table.tool);
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if only_positional || !arg.starts_with('-') || arg == "-" {
            positional.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_positional = true;
            continue;
        }
        // wget's two-letter short options.
        let arg = match (table.tool, arg.as_str()) {
            ("wget", "-nv") => "--no-verbose",
            _ => arg.as_str(),
        };
        if let Some(long) = arg.strip_prefix("--") {
            let (written, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let (name, takes_value) = (table.long)(written).ok_or_else(|| unknown(arg))?;
            let value = if takes_value {
                match inline {
                    Some(value) => Some(value),
                    None => {
                        let value = args.get(i).cloned().ok_or_else(|| missing(arg))?;
                        i += 1;
                        Some(value)
                    }
                }
            } else if inline.is_some() {
                return Err(format!(
                    "{} option `--{written}` takes no value",
                    table.tool
                ));
            } else {
                None
            };
            options.push(Opt {
                name,
                value,
                spelled: format!("--{written}"),
            });
            continue;
        }
        let letters: Vec<char> = arg.chars().skip(1).collect();
        let mut j = 0;
        while j < letters.len() {
            let letter = letters[j];
            j += 1;
            let spelled = format!("-{letter}");
            let long = (table.short)(letter).ok_or_else(|| unknown(&spelled))?;
            let (name, takes_value) = (table.long)(long).ok_or_else(|| unknown(&spelled))?;
            let value = if takes_value {
                let rest: String = letters[j..].iter().collect();
                j = letters.len();
                if rest.is_empty() {
                    let value = args.get(i).cloned().ok_or_else(|| missing(&spelled))?;
                    i += 1;
                    Some(value)
                } else {
                    Some(rest)
                }
            } else {
                None
            };
            options.push(Opt {
                name,
                value,
                spelled,
            });
        }
    }
    Ok((options, positional))
}

/// What an option list says about the request, before defaults.
#[derive(Debug, Default)]
struct Draft {
    method: Option<String>,
    /// A method implied by the options (a body → POST, `-I` → HEAD), below an explicit one.
    implied_method: Option<&'static str>,
    urls: Vec<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// The Content-Type the tool sends with a body when none is given.
    body_content_type: Option<&'static str>,
    accept_json: bool,
    basic_auth: Option<String>,
    timeout_ms: Option<u64>,
    follow_redirects: bool,
    max_attempts: Option<u32>,
}

impl Draft {
    fn header(&mut self, text: &str, spelled: &str) -> Result<(), String> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name.trim(), value.trim()),
            None => match text.trim().strip_suffix(';') {
                // curl's `Name;` sends the header with an empty value.
                Some(name) => (name.trim(), ""),
                None => {
                    return Err(format!(
                        "{spelled} {text:?} is not a header (write \"Name: value\")"
                    ));
                }
            },
        };
        if name.is_empty() {
            return Err(format!("{spelled} {text:?} has no header name"));
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(existing, _)| existing.eq_ignore_ascii_case(name))
    }

    fn into_spec(self, cron: String, timezone: String) -> Result<JobSpec, String> {
        let mut draft = self;
        let url = match draft.urls.as_slice() {
            [url] => url.clone(),
            [] => return Err("names no URL to call".to_owned()),
            urls => {
                return Err(format!(
                    "names {} URLs ({}); a job calls one",
                    urls.len(),
                    urls.join(", ")
                ));
            }
        };
        let url = credentials_out_of_url(&url, &mut draft)?;
        if let Some(credentials) = draft.basic_auth.take()
            && !draft.has_header("Authorization")
        {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            draft
                .headers
                .push(("Authorization".to_owned(), format!("Basic {encoded}")));
        }
        if draft.body.is_some()
            && let Some(content_type) = draft.body_content_type
            && !draft.has_header("Content-Type")
        {
            draft
                .headers
                .push(("Content-Type".to_owned(), content_type.to_owned()));
        }
        if draft.accept_json && !draft.has_header("Accept") {
            draft
                .headers
                .push(("Accept".to_owned(), "application/json".to_owned()));
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in draft.headers {
            let existing = headers
                .keys()
                .find(|key| key.eq_ignore_ascii_case(&name))
                .cloned();
            match existing {
                // The tool sends both lines; one header with both values means the same.
                Some(key) => {
                    if let Some(joined) = headers.get_mut(&key) {
                        joined.push_str(", ");
                        joined.push_str(&value);
                    }
                }
                None => {
                    headers.insert(name, value);
                }
            }
        }
        let method = draft
            .method
            .or_else(|| draft.implied_method.map(str::to_owned))
            .unwrap_or_else(|| "GET".to_owned());
        let retry = RetryPolicy {
            max_attempts: draft
                .max_attempts
                .unwrap_or(RetryPolicy::default().max_attempts),
            ..RetryPolicy::default()
        };
        Ok(JobSpec {
            name: String::new(),
            schedule: ScheduleSpec::Cron { cron, timezone },
            request: RequestSpec {
                method,
                url,
                headers,
                body: draft.body,
                timeout_ms: draft.timeout_ms.unwrap_or(30_000),
                follow_redirects: draft.follow_redirects,
            },
            retry,
            success: SuccessRule::default(),
            concurrency: Concurrency::default(),
            misfire: Misfire::default(),
            alerts: AlertPolicy::default(),
            auto_disable_after_failures: None,
            keep_last: None,
            paused: false,
        })
    }
}

/// The URL without `user:password@`, whose credentials become Basic authentication (as the
/// tools send them); a URL without a scheme gets `http://`, as curl assumes.
fn credentials_out_of_url(url: &str, draft: &mut Draft) -> Result<String, String> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let mut parsed =
        url::Url::parse(&url).map_err(|error| format!("the URL {url:?} is not valid: {error}"))?;
    if parsed.username().is_empty() && parsed.password().is_none() {
        return Ok(url);
    }
    let credentials = format!(
        "{}:{}",
        percent_decode(parsed.username()),
        percent_decode(parsed.password().unwrap_or_default())
    );
    if draft.basic_auth.is_none() {
        draft.basic_auth = Some(credentials);
    }
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok(parsed.to_string())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// curl's percent-encoding for `--data-urlencode` (unreserved characters kept).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Seconds (fractions allowed) as a job timeout, in the range a job accepts.
fn timeout_ms(spelled: &str, text: &str) -> Result<u64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{spelled} {text:?} is not a number of seconds"))?;
    let millis = (seconds * 1000.0).round();
    let range = cronhook_core::validate::TIMEOUT_MS;
    // Compared as floats first, so the conversion below cannot truncate.
    #[allow(clippy::cast_precision_loss)]
    let (low, high) = (*range.start() as f64, *range.end() as f64);
    if !(low..=high).contains(&millis) {
        return Err(format!(
            "{spelled} {text}: a job's timeout is 1 to 900 seconds"
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let millis = millis as u64;
    Ok(millis)
}

fn count(spelled: &str, text: &str) -> Result<u32, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{spelled} {text:?} is not a whole number"))
}

fn refuse_tls(spelled: &str) -> String {
    format!(
        "{spelled}: TLS verification cannot be disabled (cronhook always checks the target's \
         certificate)"
    )
}

fn refuse_user_agent(spelled: &str) -> String {
    format!(
        "{spelled}: cronhook sends its own User-Agent (cronhook/<version>); remove the option to \
         import the line"
    )
}

fn refuse_body_file(spelled: &str) -> String {
    format!(
        "{spelled} reads the body from a file when the command runs; a job keeps its body in \
         the job: put the file's content in the line instead"
    )
}

fn curl_short(letter: char) -> Option<&'static str> {
    Some(match letter {
        'X' => "request",
        'H' => "header",
        'd' => "data",
        'u' => "user",
        'm' => "max-time",
        'o' => "output",
        's' => "silent",
        'S' => "show-error",
        'f' => "fail",
        'L' => "location",
        'k' => "insecure",
        'v' => "verbose",
        'i' => "include",
        'G' => "get",
        'I' => "head",
        'A' => "user-agent",
        'b' => "cookie",
        'e' => "referer",
        'w' => "write-out",
        'g' => "globoff",
        'F' => "form",
        'T' => "upload-file",
        'x' => "proxy",
        _ => return None,
    })
}

fn curl_long(name: &str) -> Option<(&'static str, bool)> {
    const WITH_VALUE: [&str; 21] = [
        "request",
        "header",
        "data",
        "data-raw",
        "data-binary",
        "data-ascii",
        "data-urlencode",
        "json",
        "user",
        "max-time",
        "connect-timeout",
        "output",
        "url",
        "retry",
        "write-out",
        "user-agent",
        "cookie",
        "referer",
        "form",
        "upload-file",
        "proxy",
    ];
    const FLAGS: [&str; 14] = [
        "silent",
        "show-error",
        "fail",
        "fail-with-body",
        "location",
        "insecure",
        "get",
        "head",
        "verbose",
        "include",
        "compressed",
        "globoff",
        "no-progress-meter",
        "progress-bar",
    ];
    if let Some(found) = WITH_VALUE.iter().find(|known| **known == name) {
        return Some((found, true));
    }
    FLAGS
        .iter()
        .find(|known| **known == name)
        .map(|found| (*found, false))
}

/// curl's options into a draft request.
fn curl_request(args: &[String]) -> Result<Draft, String> {
    let table = OptionTable {
        tool: "curl",
        short: curl_short,
        long: curl_long,
    };
    let (options, positional) = scan_options(args, &table)?;
    let mut draft = Draft {
        urls: positional,
        ..Draft::default()
    };
    let mut data: Vec<String> = Vec::new();
    let mut get = false;
    let mut head = false;
    let mut json = false;
    for Opt {
        name,
        value,
        spelled,
    } in options
    {
        let value = value.unwrap_or_default();
        match name {
            "request" => draft.method = Some(value.to_ascii_uppercase()),
            "header" => draft.header(&value, &spelled)?,
            "data" | "data-ascii" | "data-binary" | "json" => {
                if value.starts_with('@') {
                    return Err(refuse_body_file(&format!("{spelled} {value}")));
                }
                json |= name == "json";
                data.push(value);
            }
            "data-raw" => data.push(value),
            "data-urlencode" => {
                let encoded = if let Some(content) = value.strip_prefix('=') {
                    percent_encode(content)
                } else if let Some((field, content)) = value.split_once('=') {
                    format!("{field}={}", percent_encode(content))
                } else if value.contains('@') {
                    return Err(refuse_body_file(&format!("{spelled} {value}")));
                } else {
                    percent_encode(&value)
                };
                data.push(encoded);
            }
            "user" => {
                if !value.contains(':') {
                    return Err(format!(
                        "{spelled} {value:?} has no password (curl would ask for it); write \
                         user:password"
                    ));
                }
                draft.basic_auth = Some(value);
            }
            "max-time" => draft.timeout_ms = Some(timeout_ms(&spelled, &value)?),
            "retry" => {
                let retries = count(&spelled, &value)?;
                let limit = cronhook_core::validate::MAX_ATTEMPTS - 1;
                if retries > limit {
                    return Err(format!(
                        "{spelled} {retries}: a job retries at most {limit} times"
                    ));
                }
                draft.max_attempts = Some(retries + 1);
            }
            "url" => draft.urls.push(value),
            "location" => draft.follow_redirects = true,
            "get" => get = true,
            "head" => head = true,
            "insecure" => return Err(refuse_tls(&spelled)),
            "user-agent" => return Err(refuse_user_agent(&spelled)),
            "cookie" => {
                if !value.contains('=') {
                    return Err(format!(
                        "{spelled} {value:?} reads cookies from a file; write the cookies \
                         themselves (name=value)"
                    ));
                }
                draft.headers.push(("Cookie".to_owned(), value));
            }
            "referer" => {
                let referer = value.trim_end_matches(";auto").to_owned();
                if !referer.is_empty() {
                    draft.headers.push(("Referer".to_owned(), referer));
                }
            }
            "form" => {
                return Err(format!(
                    "{spelled}: multipart form bodies are not supported; send the body with \
                     --data"
                ));
            }
            "upload-file" => return Err(refuse_body_file(&spelled)),
            "proxy" => {
                return Err(format!(
                    "{spelled}: a job connects to its target directly, not through a proxy"
                ));
            }
            // Output and progress settings: cronhook records the response itself. `--fail`:
            // a job already counts only 2xx as success. `--connect-timeout` is within the
            // total timeout.
            _ => {}
        }
    }
    if !data.is_empty() {
        let joined = data.join("&");
        if get {
            // `-G`: the data goes into the query string of a GET.
            for url in &mut draft.urls {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&joined);
            }
        } else {
            draft.body = Some(joined);
            draft.implied_method = Some("POST");
            draft.body_content_type = Some(if json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            });
            draft.accept_json = json;
        }
    }
    if head {
        draft.implied_method = Some("HEAD");
    }
    Ok(draft)
}

fn wget_short(letter: char) -> Option<&'static str> {
    Some(match letter {
        'O' => "output-document",
        'o' => "output-file",
        'a' => "append-output",
        'q' => "quiet",
        'v' => "verbose",
        'S' => "server-response",
        'T' => "timeout",
        't' => "tries",
        'U' => "user-agent",
        _ => return None,
    })
}

fn wget_long(name: &str) -> Option<(&'static str, bool)> {
    const WITH_VALUE: [&str; 18] = [
        "method",
        "header",
        "body-data",
        "post-data",
        "body-file",
        "post-file",
        "output-document",
        "output-file",
        "append-output",
        "timeout",
        "read-timeout",
        "connect-timeout",
        "dns-timeout",
        "tries",
        "max-redirect",
        "user",
        "password",
        "user-agent",
    ];
    const FLAGS: [&str; 8] = [
        "quiet",
        "verbose",
        "no-verbose",
        "server-response",
        "delete-after",
        "content-on-error",
        "auth-no-challenge",
        "no-check-certificate",
    ];
    if name == "http-password" {
        return Some(("password", true));
    }
    if name == "http-user" {
        return Some(("user", true));
    }
    if let Some(found) = WITH_VALUE.iter().find(|known| **known == name) {
        return Some((found, true));
    }
    FLAGS
        .iter()
        .find(|known| **known == name)
        .map(|found| (*found, false))
}

/// wget's options into a draft request. wget follows redirects unless told otherwise.
fn wget_request(args: &[String]) -> Result<Draft, String> {
    let table = OptionTable {
        tool: "wget",
        short: wget_short,
        long: wget_long,
    };
    let (options, positional) = scan_options(args, &table)?;
    let mut draft = Draft {
        urls: positional,
        follow_redirects: true,
        ..Draft::default()
    };
    let mut user = None;
    let mut password = None;
    for Opt {
        name,
        value,
        spelled,
    } in options
    {
        let value = value.unwrap_or_default();
        match name {
            "method" => draft.method = Some(value.to_ascii_uppercase()),
            "header" => draft.header(&value, &spelled)?,
            "body-data" | "post-data" => {
                draft.body = Some(value);
                draft.implied_method = Some("POST");
                draft.body_content_type = Some("application/x-www-form-urlencoded");
            }
            "body-file" | "post-file" => return Err(refuse_body_file(&spelled)),
            "timeout" => draft.timeout_ms = Some(timeout_ms(&spelled, &value)?),
            "tries" => {
                let tries = count(&spelled, &value)?;
                let limit = cronhook_core::validate::MAX_ATTEMPTS;
                if !(1..=limit).contains(&tries) {
                    return Err(format!(
                        "{spelled} {tries}: a job makes 1 to {limit} attempts"
                    ));
                }
                draft.max_attempts = Some(tries);
            }
            "max-redirect" => draft.follow_redirects = count(&spelled, &value)? > 0,
            "user" => user = Some(value),
            "password" => password = Some(value),
            "no-check-certificate" => return Err(refuse_tls(&spelled)),
            "user-agent" => return Err(refuse_user_agent(&spelled)),
            // Output, logging and the other timeouts: cronhook records the response and has one
            // total timeout.
            _ => {}
        }
    }
    match (user, password) {
        (Some(user), Some(password)) => draft.basic_auth = Some(format!("{user}:{password}")),
        (None, None) => {}
        _ => {
            return Err(
                "gives only one of --user and --password; a job needs both for Basic \
                 authentication"
                    .to_owned(),
            );
        }
    }
    Ok(draft)
}

/// A job name from a URL's host and path: lowercase letters, digits and dashes.
pub fn slug_of_url(url: &str) -> String {
    let place = match url::Url::parse(url) {
        Ok(parsed) => format!("{}{}", parsed.host_str().unwrap_or_default(), parsed.path()),
        Err(_) => url.to_owned(),
    };
    let mut slug = String::new();
    for c in place.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug: String = slug.chars().take(MAX_SLUG_CHARS).collect();
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        "job".to_owned()
    } else {
        slug
    }
}

/// Hands out names, adding `-2`, `-3`… to repeats.
#[derive(Debug, Default)]
struct Names {
    taken: std::collections::HashSet<String>,
}

impl Names {
    fn allocate(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> JobSpec {
        let import = parse_crontab(line);
        assert!(import.refused.is_empty(), "{line}: {:?}", import.refused);
        assert_eq!(import.jobs.len(), 1);
        import.jobs[0].spec.clone()
    }

    fn why(line: &str) -> String {
        let import = parse_crontab(line);
        assert!(import.jobs.is_empty(), "{line} became {:?}", import.jobs);
        assert_eq!(import.refused.len(), 1, "{:?}", import.refused);
        import.refused[0].why.clone()
    }

    fn cron_of(spec: &JobSpec) -> (String, String) {
        match &spec.schedule {
            ScheduleSpec::Cron { cron, timezone } => (cron.clone(), timezone.clone()),
            ScheduleSpec::At { .. } => panic!("not a cron schedule"),
        }
    }

    #[test]
    fn a_plain_curl_line_becomes_a_get_job() {
        let spec = one("*/5 * * * * curl -fsS https://api.example.com/health/ping >/dev/null 2>&1");
        assert_eq!(spec.name, "api-example-com-health-ping");
        assert_eq!(cron_of(&spec), ("*/5 * * * *".into(), "UTC".into()));
        assert_eq!(spec.request.method, "GET");
        assert_eq!(spec.request.url, "https://api.example.com/health/ping");
        assert!(spec.request.headers.is_empty());
        assert_eq!(spec.request.body, None);
        assert!(!spec.request.follow_redirects);
        assert_eq!(spec.request.timeout_ms, 30_000);
    }

    #[test]
    fn curl_options_map_to_the_request() {
        let spec = one(
            r#"0 3 * * 1-5 /usr/bin/curl -sSL -X put -H 'Content-Type: application/json' -H "X-Trace: a b" --data-raw '{"kind":"nightly"}' --max-time 90 --retry 4 "https://api.example.com/reports?x=1" || true"#,
        );
        assert_eq!(spec.request.method, "PUT");
        assert_eq!(spec.request.url, "https://api.example.com/reports?x=1");
        assert_eq!(
            spec.request.headers.get("Content-Type").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            spec.request.headers.get("X-Trace").map(String::as_str),
            Some("a b")
        );
        assert_eq!(spec.request.body.as_deref(), Some(r#"{"kind":"nightly"}"#));
        assert_eq!(spec.request.timeout_ms, 90_000);
        assert!(spec.request.follow_redirects);
        assert_eq!(spec.retry.max_attempts, 5);
        assert_eq!(spec.name, "api-example-com-reports");
    }

    #[test]
    fn data_implies_post_with_curls_content_type_and_credentials_become_basic() {
        let spec = one("@hourly curl -d a=1 -d b=2 -u bot:s3cret https://example.com/hook");
        assert_eq!(cron_of(&spec).0, "@hourly");
        assert_eq!(spec.request.method, "POST");
        assert_eq!(spec.request.body.as_deref(), Some("a=1&b=2"));
        assert_eq!(
            spec.request.headers.get("Content-Type").map(String::as_str),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            spec.request
                .headers
                .get("Authorization")
                .map(String::as_str),
            Some("Basic Ym90OnMzY3JldA==")
        );
        let json = one(r#"@daily curl --json '{"a":1}' https://example.com/j"#);
        assert_eq!(
            json.request.headers.get("Content-Type").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            json.request.headers.get("Accept").map(String::as_str),
            Some("application/json")
        );
        let get = one("@daily curl -G -d q=a --data-urlencode 'w=x y' https://example.com/s");
        assert_eq!(get.request.method, "GET");
        assert_eq!(get.request.url, "https://example.com/s?q=a&w=x%20y");
        assert_eq!(get.request.body, None);
        let in_url = one(r"@daily curl https://u:p\%40ss@example.com/x");
        assert_eq!(in_url.request.url, "https://example.com/x");
        assert_eq!(
            in_url
                .request
                .headers
                .get("Authorization")
                .map(String::as_str),
            Some("Basic dTpwQHNz")
        );
    }

    #[test]
    fn wget_lines_become_jobs_that_follow_redirects() {
        let spec = one(
            "30 2 * * * wget -qO- --method=PATCH --header='Authorization: Bearer abcdefgh1234' --body-data='x=1' --timeout=20 https://example.com/w > /dev/null",
        );
        assert_eq!(spec.request.method, "PATCH");
        assert_eq!(spec.request.body.as_deref(), Some("x=1"));
        assert_eq!(
            spec.request
                .headers
                .get("Authorization")
                .map(String::as_str),
            Some("Bearer abcdefgh1234")
        );
        assert_eq!(spec.request.timeout_ms, 20_000);
        assert!(spec.request.follow_redirects);
        let post = one("0 * * * * wget -q -O /dev/null --post-data 'a=b' http://example.com/p");
        assert_eq!(post.request.method, "POST");
        let no_redirects = one("0 * * * * wget -nv --max-redirect=0 https://example.com/");
        assert!(!no_redirects.request.follow_redirects);
        assert_eq!(no_redirects.name, "example-com");
    }

    #[test]
    fn time_zone_lines_apply_to_the_lines_after_them() {
        let import = parse_crontab(
            "MAILTO=ops@example.com\n0 1 * * * curl https://a.example/\nCRON_TZ=Europe/Berlin\n0 2 * * * curl https://b.example/\n",
        );
        assert_eq!(import.jobs.len(), 2);
        assert_eq!(cron_of(&import.jobs[0].spec).1, "UTC");
        assert_eq!(cron_of(&import.jobs[1].spec).1, "Europe/Berlin");
        assert_eq!(import.jobs[1].line, 4);
        assert_eq!(import.refused.len(), 2);
        assert_eq!(import.refused[0].line, 1);
        assert!(import.refused[0].why.starts_with("not a job"));
        assert!(import.refused[1].why.contains("Europe/Berlin"));
    }

    #[test]
    fn repeated_places_get_numbered_names_and_system_crontabs_are_read() {
        let import = parse_crontab(
            "# comment\n\n0 1 * * * curl https://example.com/a\n0 2 * * * root curl https://example.com/a\n0 3 * * * curl https://example.com/a\n",
        );
        let names: Vec<_> = import.jobs.iter().map(|j| j.spec.name.clone()).collect();
        assert_eq!(
            names,
            ["example-com-a", "example-com-a-2", "example-com-a-3"]
        );
        assert!(import.refused.is_empty());
    }

    #[test]
    fn percent_signs_follow_crons_rule() {
        let spec = one(r"0 1 * * * curl 'https://example.com/a\%20b'");
        assert_eq!(spec.request.url, "https://example.com/a%20b");
        assert!(why("0 1 * * * curl https://example.com/a%20b").contains("standard input"));
    }

    #[test]
    fn what_a_job_cannot_do_is_refused_with_why() {
        let cases = [
            ("0 1 * * * curl -k https://e.example/", "TLS verification"),
            (
                "0 1 * * * curl --insecure https://e.example/",
                "TLS verification",
            ),
            (
                "0 1 * * * curl -d @body.json https://e.example/",
                "from a file",
            ),
            (
                "0 1 * * * curl --proxy-anyauth https://e.example/",
                "`--proxy-anyauth` is not supported",
            ),
            (
                "0 1 * * * curl -Z https://e.example/",
                "`-Z` is not supported",
            ),
            (
                "0 1 * * * curl https://a.example/ https://b.example/",
                "names 2 URLs",
            ),
            ("0 1 * * * curl -s", "no URL"),
            ("0 1 * * * /opt/backup.sh --full", "not curl or wget"),
            ("0 1 * * * curl https://e.example/ | sh", "pipes"),
            (
                "0 1 * * * curl https://e.example/ && echo done",
                "runs more than the request",
            ),
            (
                "0 1 * * * curl -H \"Authorization: $TOKEN\" https://e.example/",
                "shell expansion",
            ),
            ("0 1 * * * curl 'https://e.example/", "unterminated quote"),
            (
                "0 1 * * * curl -m 0.5 https://e.example/",
                "1 to 900 seconds",
            ),
            (
                "0 1 * * * curl --max-time 901 https://e.example/",
                "1 to 900 seconds",
            ),
            ("0 1 * * * curl -u bot https://e.example/", "no password"),
            (
                "0 1 * * * wget --no-check-certificate https://e.example/",
                "TLS verification",
            ),
            (
                "0 1 * * * wget --post-file=x https://e.example/",
                "from a file",
            ),
            ("@reboot curl https://e.example/", "@reboot"),
            ("0 1 * * curl https://e.example/", "schedule"),
            ("61 1 * * * curl https://e.example/", "schedule.cron"),
            ("0 1 * * * curl ftp://e.example/", "request.url"),
            (
                "0 1 * * * curl -X BREW https://e.example/",
                "request.method",
            ),
        ];
        for (line, expected) in cases {
            let why = why(line);
            assert!(why.contains(expected), "{line}: {why:?} lacks {expected:?}");
        }
    }

    #[test]
    fn redirections_are_dropped_wherever_they_are() {
        for line in [
            "0 1 * * * curl -s https://e.example/x > /tmp/out.log 2>&1",
            "0 1 * * * curl -s https://e.example/x &>/dev/null",
            "0 1 * * * curl -s >>'/tmp/a b.log' https://e.example/x",
            "0 1 * * * curl -s https://e.example/x 2>/dev/null || echo failed | mail root",
        ] {
            let spec = one(line);
            assert_eq!(spec.request.url, "https://e.example/x", "{line}");
        }
    }

    #[test]
    fn slugs_are_tidy() {
        assert_eq!(
            slug_of_url("https://API.Example.com:8443/v1/Reports/?a=b"),
            "api-example-com-v1-reports"
        );
        assert_eq!(slug_of_url("https://example.com/"), "example-com");
        assert!(slug_of_url(&format!("https://e.com/{}", "a".repeat(300))).len() <= 80);
    }
}
