//! `seal [FILE]...`, `seal create` and `seal raw`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealant_core::bitnami::resolve_scope;
use sealant_core::convert::{ConvertError, Items, SealOptions, seal_secret, target_of};
use sealant_core::manifest::{Located, SecretManifest};
use sealant_core::scope::{Binding, Scope, Target};
use sealant_core::value::seal_value;
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{as_secret, for_each_object, render};
use crate::cli::{Cli, ClusterArgs, CreateArgs, ItemArgs, RawArgs};
use crate::failure::{Failure, Result, is_stdin};
use crate::files::{emit, read_bytes};
use crate::recipients::Recipients;

pub fn run(cli: &Cli) -> Result<()> {
    let args = &cli.sealing;
    let recipients = Recipients::from_args(&args.to)?.or_cluster(&cli.cluster);
    let mut sealed = Vec::new();
    let mut context_namespace = ContextNamespace::new(&cli.cluster);
    for_each_object(&cli.files, |input, object| {
        let Located {
            line,
            value: secret,
        } = as_secret(input, object)?;
        // Rules match where the sealed file will live: -w, else the input's path.
        let sealed_path = cli
            .output
            .write
            .as_deref()
            .or((!is_stdin(input)).then_some(input));
        let fail = |e: ConvertError| {
            Failure::at_line(input, line, format!("Secret {}: {e}", label(&secret)))
        };
        let scope = resolve_scope(
            args.scope.map(Scope::from),
            secret.metadata.annotations.as_ref(),
        )
        .map_err(|e| Failure::at_line(input, line, format!("Secret {}: {e}", label(&secret))))?;
        let namespace = match &args.namespace {
            Some(given) => Some(given.clone()),
            None if has_namespace(&secret) => None,
            None => context_namespace.get(scope)?,
        };
        let target = target_of(&secret, namespace.as_deref()).map_err(fail)?;
        let to = recipients
            .require(sealed_path, target.namespace.as_deref())
            .map_err(|e| Failure::at_line(input, line, e))?;
        let opts = SealOptions {
            scope,
            recipients: &to,
            namespace: namespace.as_deref(),
            allow_empty: cli.allow_empty,
        };
        sealed.push(seal_secret(&secret, &opts).map_err(fail)?);
        Ok(())
    })?;
    emit(
        &render(&sealed, cli.output.format)?,
        cli.output.write.as_deref(),
    )
}

fn has_namespace(secret: &SecretManifest) -> bool {
    secret
        .metadata
        .namespace
        .as_deref()
        .is_some_and(|n| !n.is_empty())
}

/// The namespace for a Secret that names none when `-n` is not given either: as kubectl, the
/// kubeconfig context's (else `default`). Only for scopes that bind a namespace, where the
/// alternative is an error: a cluster-wide SealedSecret stays free of one. Read at most once,
/// and only when needed, so sealing offline never touches the kubeconfig.
struct ContextNamespace<'a> {
    cluster: &'a ClusterArgs,
    found: Option<Option<String>>,
}

impl<'a> ContextNamespace<'a> {
    fn new(cluster: &'a ClusterArgs) -> Self {
        ContextNamespace {
            cluster,
            found: None,
        }
    }

    fn get(&mut self, scope: Scope) -> Result<Option<String>> {
        if scope == Scope::ClusterWide {
            return Ok(None);
        }
        if self.found.is_none() {
            self.found = Some(self.cluster.default_namespace()?);
        }
        Ok(self.found.clone().flatten())
    }
}

fn label(secret: &SecretManifest) -> String {
    match &secret.metadata.name {
        Some(name) => format!("'{name}'"),
        None => "(unnamed)".into(),
    }
}

pub fn create(args: &CreateArgs) -> Result<()> {
    let items = items_from_flags(&args.items)?;
    let namespace = match &args.sealing.namespace {
        Some(given) => Some(given.clone()),
        None => ContextNamespace::new(&args.cluster).get(args.sealing.scope_or_strict())?,
    };
    let data = items
        .iter()
        .map(|(k, v)| (k.clone(), SecretString::from(BASE64.encode(&v[..]))))
        .collect::<BTreeMap<_, _>>();
    let secret = SecretManifest {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        metadata: ObjectMeta {
            name: Some(args.name.clone()),
            namespace: namespace.clone(),
            ..Default::default()
        },
        data: Some(data),
        type_: args.type_.clone(),
        ..Default::default()
    };
    let recipients = Recipients::from_args(&args.sealing.to)?.or_cluster(&args.cluster);
    let to = recipients.require(args.output.write.as_deref(), namespace.as_deref())?;
    let opts = SealOptions {
        scope: args.sealing.scope_or_strict(),
        recipients: &to,
        namespace: None,
        allow_empty: args.allow_empty,
    };
    let sealed = seal_secret(&secret, &opts)
        .map_err(|e| Failure::new(format!("Secret '{}': {e}", args.name)))?;
    emit(
        &render(&[sealed], args.output.format)?,
        args.output.write.as_deref(),
    )
}

pub fn raw(args: &RawArgs) -> Result<()> {
    let scope = args.sealing.scope_or_strict();
    let name = match (&args.name, scope) {
        (Some(name), _) => name.clone(),
        (None, Scope::Strict) => {
            return Err(Failure::usage(
                "--name is needed for strict scope (or pass --scope)",
            ));
        }
        (None, _) => String::new(),
    };
    let namespace = match &args.sealing.namespace {
        Some(given) => Some(given.clone()),
        None => ContextNamespace::new(&args.cluster).get(scope)?,
    };
    let target = Target {
        namespace: namespace.clone(),
        name,
    };
    let binding = Binding::new(scope, &target).map_err(|e| Failure::new(e.to_string()))?;
    if std::io::stdin().is_terminal() {
        return Err(Failure::new("<stdin>: pipe the value to seal on stdin"));
    }
    let mut value = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut value)
        .map_err(|e| Failure::new(format!("<stdin>: cannot read: {e}")))?;
    if value.is_empty() && !args.allow_empty {
        return Err(Failure::new(
            "<stdin>: the value is empty (pass --allow-empty to seal it anyway)",
        ));
    }
    let recipients = Recipients::from_args(&args.sealing.to)?.or_cluster(&args.cluster);
    let to = recipients.require(None, namespace.as_deref())?;
    let sealed = seal_value(&value, &binding, &to).map_err(|e| Failure::new(e.to_string()))?;
    emit(&format!("{}\n", sealed.ciphertext), None)
}

/// Items from `--from-literal KEY=VALUE` and `--from-file [KEY=]PATH`.
pub fn items_from_flags(args: &ItemArgs) -> Result<Items> {
    let mut items = Items::new();
    let mut add = |key: String, value: Zeroizing<Vec<u8>>| {
        if items.insert(key.clone(), value).is_some() {
            return Err(Failure::usage(format!("item '{key}' is given twice")));
        }
        Ok(())
    };
    for literal in &args.literals {
        let Some((key, value)) = literal.split_once('=') else {
            return Err(Failure::usage(format!(
                "--from-literal expects KEY=VALUE, got '{}'",
                literal.chars().take(40).collect::<String>()
            )));
        };
        add(key.to_owned(), Zeroizing::new(value.as_bytes().to_vec()))?;
    }
    for spec in &args.files {
        let (key, path) = match spec.split_once('=') {
            Some((key, path)) => (key.to_owned(), Path::new(path)),
            None => {
                let path = Path::new(spec);
                let key = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (key, path)
            }
        };
        add(key, Zeroizing::new(read_bytes(path)?))?;
    }
    Ok(items)
}
