//! How a long-running command (`run --watch`, `worker`, `ingest`, `replay`, `serve`) hears it
//! should stop.

/// Resolves on the first Ctrl-C or SIGTERM (the pipeline then drains and commits); a second
/// one exits at once (safe too: the checkpoint and every result are written atomically).
pub async fn shutdown_signal() {
    wait_for_signal().await;
    eprintln!("stopping: finishing the photos in flight (press Ctrl-C again to stop at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("stopped at once; the next run resumes from the last checkpoint");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
