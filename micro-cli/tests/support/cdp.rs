//! Headless Chromium, driven over the DevTools protocol the way a person would use a page:
//! load it, click, type, wait for what appears, take a screenshot.
//!
//! Chromium talks the protocol over a pipe (`--remote-debugging-pipe`: it reads commands
//! from fd 3 and writes replies to fd 4, each message JSON followed by a NUL byte). A shell
//! maps those two descriptors onto the child's stdin and stdout, so no socket is opened and
//! nothing but the page's own server is reached.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::PATIENCE;

/// The flags every run uses: no sandbox (containers), no GPU, and nothing that phones home.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
];

/// A Chromium process with one page open.
#[derive(Debug)]
pub(crate) struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    profile: PathBuf,
}

/// The browser's binary: `$CHROMIUM`, else Debian's `chromium`.
fn binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

impl Browser {
    /// Starts Chromium with a fresh profile and opens an empty page of `width`×`height`.
    ///
    /// # Panics
    /// When Chromium is not installed (`apt-get install -y chromium`) or does not answer.
    pub(crate) fn launch(width: u32, height: u32) -> Browser {
        static N: AtomicU64 = AtomicU64::new(0);
        let profile = std::env::temp_dir().join(format!(
            "micro-cli-chromium-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile directory");
        let log = std::fs::File::create(profile.join("chromium.log")).expect("log file");
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.join("data").display()
        ));
        args.push(format!("--window-size={width},{height}"));
        args.push("about:blank".to_owned());
        // fd 3 <- our pipe (its stdin), fd 4 -> our pipe (its stdout).
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(binary())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start bash for chromium");
        let commands = child.stdin.take().expect("stdin");
        let replies = child.stdout.take().expect("stdout");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(replies);
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(0, &mut buf) {
                if n == 0 {
                    break;
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(message) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        let mut browser = Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
            profile,
        };
        let version = browser.send(None, "Browser.getVersion", json!({}));
        eprintln!("browser: {}", version["product"]);
        let target = browser.send(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
        browser
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("encode");
        bytes.push(0);
        if let Err(e) = self
            .commands
            .write_all(&bytes)
            .and_then(|()| self.commands.flush())
        {
            panic!("chromium is gone ({e}); is it installed? {}", self.log());
        }
        let start = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(start.elapsed());
            match self.messages.recv_timeout(left) {
                Ok(reply) if reply["id"] == json!(id) => {
                    if let Some(error) = reply.get("error") {
                        panic!("{method} failed: {error}");
                    }
                    return reply["result"].clone();
                }
                Ok(_event) => {}
                Err(_) => panic!(
                    "no answer to {method} from chromium (apt-get install -y chromium): {}",
                    self.log()
                ),
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.join("chromium.log"))
            .map(|log| log.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// A protocol command on the page.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Loads `url` in the page.
    pub(crate) fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({ "url": url }));
        assert!(
            result.get("errorText").is_none(),
            "navigation failed: {result}"
        );
    }

    /// The value of a JavaScript expression (promises are awaited).
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = result.get("exceptionDetails") {
            panic!("{expression} threw: {e}");
        }
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true; panics naming `what` after [`PATIENCE`].
    pub(crate) fn wait_until(&mut self, what: &str, expression: &str) {
        let start = Instant::now();
        loop {
            // Right after a navigation the old document may still answer, or none at all.
            let result = self.call(
                "Runtime.evaluate",
                json!({ "expression": format!("Boolean({expression})"), "returnByValue": true }),
            );
            if result["result"]["value"] == json!(true) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for {what}; the page shows: {}",
                self.eval("document.body ? document.body.innerText : ''")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text of the first element matching `selector`.
    pub(crate) fn text(&mut self, selector: &str) -> String {
        let value = self.eval(&format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            json!(selector)
        ));
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks the middle of the first element matching `selector` with the mouse.
    pub(crate) fn click(&mut self, selector: &str) {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()",
            json!(selector)
        ));
        assert!(!rect.is_null(), "nothing matches {selector}");
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// Clicks into the field matching `selector`, selects what it holds, and types `text`
    /// over it.
    pub(crate) fn type_into(&mut self, selector: &str, text: &str) {
        self.click(selector);
        self.eval(&format!(
            "document.querySelector({}).select()",
            json!(selector)
        ));
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// A PNG of the page as it is shown, written to `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask first, so that Chromium takes its helper processes down with it.
        let close = br#"{"id":0,"method":"Browser.close","params":{}}"#;
        if self
            .commands
            .write_all(close)
            .and_then(|()| self.commands.write_all(&[0]))
            .is_ok()
        {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
