//! Runs Sealant's Argo CD health check (deploy/argocd/sealant.dev/SealedSecret/health.lua)
//! with a real Lua 5.1 interpreter (`lua5.1`; Argo CD's gopher-lua is Lua 5.1), the way Argo CD
//! does: the object as a Lua table named `obj`, the script as the body of a function, and the
//! table it returns read for `status` and `message`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The Argo CD layout's directory for the kind: health.lua, health_test.yaml, testdata/.
pub fn check_dir() -> PathBuf {
    crate::root().join("deploy/argocd/sealant.dev/SealedSecret")
}

/// The health check's source.
pub fn health_lua() -> String {
    std::fs::read_to_string(check_dir().join("health.lua")).expect("health.lua is readable")
}

/// Argo CD's verdict on `obj`: (status, message); message "" when the check sets none.
pub fn health(obj: &Value) -> (String, String) {
    let program = format!(
        "local obj = {}\nlocal function check(obj)\n{}\nend\nlocal hs = check(obj)\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(obj),
        health_lua()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.lua");
    std::fs::write(&file, program).unwrap();
    let out = crate::run(
        {
            let mut cmd = Command::new("lua5.1");
            cmd.arg(&file);
            cmd
        },
        None,
    );
    let output = crate::ok(out);
    let (status, message) = output.split_once('\n').expect("status, then message");
    (status.to_owned(), message.to_owned())
}

/// `value` as a Lua expression, as gopher-lua's JSON decoding gives it to a check: objects and
/// arrays become tables, null leaves the field out.
pub fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// A Lua string literal: printable ASCII as is, every other byte as a decimal escape.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}
