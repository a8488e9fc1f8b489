//! `runnel-kube-fake`: the fake Kubernetes API server of runnel's tests as a program, for
//! trying the Kubernetes executor by hand (no cluster can run on runnel's CI machines). It
//! serves on 127.0.0.1, writes a kubeconfig, and on Ctrl-C or SIGTERM removes every Docker
//! object it created.

use std::path::PathBuf;

use clap::Parser;
use runnel_kube_fake::{FakeCluster, FakeOptions};

/// A fake Kubernetes API server that runs pods on the local Docker engine.
#[derive(Debug, Parser)]
#[command(name = "runnel-kube-fake", version)]
struct Args {
    /// Where to write the kubeconfig.
    #[arg(long, default_value = "kubeconfig")]
    kubeconfig: PathBuf,
    /// The name of its cluster, user and context.
    #[arg(long, default_value = "runnel-fake")]
    context: String,
    /// The context's namespace (created with the `default` one).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The bearer token clients must send.
    #[arg(long, default_value = "runnel-fake-token", conflicts_with = "no_auth")]
    token: String,
    /// Accept requests without a token.
    #[arg(long)]
    no_auth: bool,
    /// A cluster without a node: no Docker engine needed, pods stay Pending.
    #[arg(long)]
    no_node: bool,
    /// Serve HTTPS with a CA of its own (written into the kubeconfig).
    #[arg(long)]
    tls: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut options = FakeOptions::default()
        .namespace(&args.namespace)
        .token((!args.no_auth).then_some(args.token.as_str()));
    options.node = !args.no_node;
    options.tls = args.tls;
    let cluster = FakeCluster::start(options).await?;
    cluster.write_kubeconfig(&args.kubeconfig, &args.context, &args.namespace)?;
    println!("fake Kubernetes API server at {}", cluster.url());
    println!(
        "kubeconfig written to {} (context `{}`)",
        args.kubeconfig.display(),
        args.context
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("shutting down: removing the pods' containers and volumes");
    cluster.shutdown().await;
    Ok(())
}
