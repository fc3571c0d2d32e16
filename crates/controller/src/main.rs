//! `seal-controller`: see `seal-controller --help`.

use std::io::IsTerminal;

use anyhow::{Context, anyhow};
use clap::Parser;
use kube::Client;
use sealant_controller::cli::{Cli, Command, CommonArgs, ImportBitnamiKeysArgs, LogFormat};
use sealant_controller::fence::Fence;
use sealant_controller::field_manager::field_manager;
use sealant_controller::keys::{ClusterKeys, KeyStore};
use sealant_controller::run::run;
use sealant_kubeconfig::{Selection, chain, connection_failure};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let common = match &cli.command {
        Some(Command::Rotate(common)) => common.clone(),
        Some(Command::ImportBitnamiKeys(args)) => args.common.clone(),
        _ => cli.run.common.clone(),
    };
    init_logging(common.log_format);
    match run_command(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the error and each of its causes, which say themselves once.
            tracing::error!("{}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Crd) => {
            print!("{}", sealant_core::crd::crd_yaml());
            Ok(())
        }
        Some(Command::Rotate(common)) => rotate(common).await,
        Some(Command::ImportBitnamiKeys(args)) => import_bitnami_keys(args).await,
        None => {
            let (client, server) = connect(&cli.run.common).await?;
            let listen_addr = cli.run.listen_addr;
            let (tx, rx) = watch::channel(false);
            let mut term = signal(SignalKind::terminate())?;
            let mut int = signal(SignalKind::interrupt())?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM: shutting down"),
                    _ = int.recv() => info!("SIGINT: shutting down"),
                }
                let _ = tx.send(true);
            });
            run(client, cli.run, rx).await.map_err(|e| {
                // Binding the HTTP server is the only listening run() does.
                let listening = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable
                    )
                });
                if listening {
                    anyhow!("cannot listen on {listen_addr} (--listen-addr): {e}")
                } else {
                    at_server(e, &server)
                }
            })
        }
    }
}

async fn rotate(common: CommonArgs) -> anyhow::Result<()> {
    let (client, server) = connect(&common).await?;
    let namespace = common.namespace;
    let keys = ClusterKeys {
        client,
        namespace: namespace.clone(),
        field_manager: field_manager("rotate"),
        // A one-shot command outside leader election: the key's name makes a race with
        // renewal (or another rotate) end in one new key, not two.
        fence: Fence::unfenced(),
    };
    let recipient = async { keys.rotate(&keys.load().await?).await }
        .await
        .context(format!("cannot make a new key in namespace {namespace}"))
        .map_err(|e| at_server(e, &server))?;
    let published = match keys.load().await {
        Ok(set) => keys.publish(&set).await,
        Err(e) => Err(e),
    };
    published
        .context(format!(
            "made key {recipient}, but cannot publish it in ConfigMap {namespace}/{}",
            sealant_core::keystore::RECIPIENTS_CONFIGMAP
        ))
        .map_err(|e| at_server(e, &server))?;
    info!(%recipient, "new active key");
    println!("{recipient}");
    Ok(())
}

/// Reads the whole backup first, so a bad file writes nothing; then one line per key.
async fn import_bitnami_keys(args: ImportBitnamiKeysArgs) -> anyhow::Result<()> {
    let keys = sealant_controller::bitnami::read_key_backup(&args.file)?;
    let (client, server) = connect(&args.common).await?;
    let namespace = &args.common.namespace;
    for line in sealant_controller::bitnami::import_keys(client, namespace, &keys)
        .await
        .map_err(|e| at_server(e, &server))?
    {
        println!("{line}");
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // kube's client also logs every failed request as an ERROR; the failure is reported
        // (once, with its API server) where it is handled.
        tracing_subscriber::EnvFilter::new(
            "info,kube=warn,kube_client=warn,kube_client::client::builder=off,kube_runtime=warn",
        )
    });
    // Colour only for a person at a terminal: a log file or collector gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A client for the kubeconfig's cluster, or the Pod's; and the API server's URL, for messages.
async fn connect(common: &CommonArgs) -> anyhow::Result<(Client, String)> {
    let selection = Selection {
        kubeconfig: common.kubeconfig.clone(),
        context: common.context.clone(),
    };
    let config = sealant_kubeconfig::load(&selection).await?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| anyhow!("{server}: {}", chain(&e)))?;
    Ok((client, server))
}

/// Says which API server a Kubernetes error came from and what it said: the layers above it,
/// then kube's error in the words of [`describe_kube`].
fn at_server(e: anyhow::Error, server: &str) -> anyhow::Error {
    let mut parts: Vec<String> = Vec::new();
    for layer in e.chain() {
        if let Some(kube) = layer.downcast_ref::<kube::Error>() {
            parts.push(describe_kube(kube, server));
            return anyhow!(parts.join(": "));
        }
        parts.push(layer.to_string());
    }
    e
}

fn describe_kube(e: &kube::Error, server: &str) -> String {
    match e {
        kube::Error::Api(status) => {
            let code = axum::http::StatusCode::from_u16(status.code).ok();
            let reason = code.and_then(|c| c.canonical_reason()).unwrap_or_default();
            format!(
                "the API server at {server} answered {} {reason}: {}",
                status.code, status.message
            )
        }
        other => match connection_failure(other) {
            Some(cause) => format!("cannot reach the API server at {server}: {cause}"),
            None => format!("{server}: {}", chain(other)),
        },
    }
}
