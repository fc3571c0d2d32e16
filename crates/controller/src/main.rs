//! `seal-controller`: see `seal-controller --help`.

use clap::Parser;
use kube::{Client, CustomResourceExt};
use sealant_controller::cli::{Cli, Command, CommonArgs, LogFormat};
use sealant_controller::keys::{ClusterKeys, KeyStore};
use sealant_controller::run::run;
use sealant_controller::state::SharedKeys;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::info;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let common = match &cli.command {
        Some(Command::Rotate(common)) => common.clone(),
        _ => cli.run.common.clone(),
    };
    init_logging(common.log_format);
    match run_command(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Crd) => {
            let _ = sealant_core::SealedSecret::crd();
            print!("{}", sealant_core::crd::crd_yaml());
            Ok(())
        }
        Some(Command::Rotate(common)) => rotate(common).await,
        None => {
            let client = Client::try_default().await?;
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
            run(client, cli.run, rx).await
        }
    }
}

async fn rotate(common: CommonArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let keys = ClusterKeys {
        client,
        namespace: common.namespace,
        shared: SharedKeys::default(),
    };
    let recipient = keys.rotate().await?;
    keys.publish(&keys.load().await?).await?;
    info!(%recipient, "new active key");
    println!("{recipient}");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,kube_lease_manager=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
