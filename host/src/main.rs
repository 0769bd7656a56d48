//! The `rulebox` command: `run` a pipeline, `validate` its configuration,
//! `test` or `inspect` a rule module, make a `new` rule crate, read
//! `alerts`, watch a pipeline (`top`).
//! Thin: parses arguments, sets up logging, maps errors to exit codes
//! (0 ok, 1 runtime errors, 2 bad configuration).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rulebox::sandbox::Runtime;
use rulebox::terminal::progress::LogWriter;
use rulebox::topology::Loaded;
use rulebox::topology::{self, Summary};

/// Tells glibc's malloc to keep the memory it is given back. Batches are
/// buffers of a few hundred KiB, made on one thread and freed on another.
/// With glibc's defaults (an mmap threshold that moves with what was freed,
/// and trimming a heap above twice that) many went back to the kernel, and
/// the next batch faulted fresh zeroed pages in: about 46,000 page faults in
/// a 1,000,000-event run, and a fifth more CPU per event on one core. Fixed
/// thresholds keep blocks under 4 MiB in the heaps, trimmed above 8 MiB
/// free. A `GLIBC_TUNABLES` that sets any of malloc's tunables is left to
/// decide instead. See docs/performance.md, "The allocator".
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const MMAP_THRESHOLD: libc::c_int = 4 << 20;
    const TRIM_THRESHOLD: libc::c_int = 8 << 20;
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.to_string_lossy().contains("glibc.malloc.") {
        return;
    }
    // SAFETY: mallopt only sets malloc's parameters, and main calls this
    // first, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

#[derive(Parser)]
#[command(
    name = "rulebox",
    version,
    about = "Sandboxed detection rules for log pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (tracing syntax, e.g. `info` or `rulebox=debug`); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    log_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its inputs end or SIGINT/SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Keep state, checkpoints and spools here instead of the
        /// configuration's `data_dir` (several processes of one
        /// configuration on one machine each need their own).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a configuration: syntax, graph, and every plugin loaded and
    /// initialised with its configuration.
    Validate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run rule tests (TOML files, or folders of them) through the real
    /// sandboxed module at a simulated clock; exit 1 if one fails.
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The module to test, instead of each file's `module`.
        #[arg(long)]
        module: Option<PathBuf>,
    },
    /// Describe a rule module without running it: its manifest, imports,
    /// exports, size, and the signature file beside it.
    Inspect {
        module: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Verify the signature beside the module against this key (a
        /// minisign public key in base64, or a .pub file; repeatable);
        /// exit 1 when it does not verify.
        #[arg(long = "key")]
        keys: Vec<String>,
    },
    /// Create something new from a template (`new rule NAME`).
    #[command(subcommand)]
    New(New),
    /// Show a file of alerts (NDJSON, `-` for stdin) as a table: the latest
    /// line of each alert_id, riskiest first, then by connection count.
    Alerts { file: PathBuf },
    /// Watch a running pipeline: per component, events in and out per
    /// second, totals, errors and queues, from its `[api]` /metrics.
    Top {
        /// The pipeline's `[api] address`.
        #[arg(long, default_value = "127.0.0.1:8686")]
        address: String,
        /// Seconds between readings.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many readings (default: until interrupted).
        #[arg(long)]
        iterations: Option<u64>,
    },
}

#[derive(Subcommand)]
enum New {
    /// A rule crate that builds, tests and runs as it is (docs/writing-a-rule.md).
    Rule {
        /// The crate's name: lower-case letters, digits and '-'.
        name: String,
        /// Where to create it (default: NAME); inside a rulebox checkout,
        /// plugin/NAME or examples/NAME.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A rulebox checkout (or its plugin/sdk) to build against: makes a
        /// standalone crate outside the checkout.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    // Answering rsyslog's mmexternal, stderr is the answer pipe too: logs
    // go to a file (--log-file, or rulebox.log in data_dir), never there.
    let mut log_file = cli.log_file.clone();
    if let Command::Run { config, data_dir } = &cli.command
        && log_file.is_none()
        && let Ok(l) = Loaded::read(config).map(|l| l.with_data_dir(data_dir.as_deref()))
        && l.answers_mmexternal()
    {
        let dir = l.paths.data_dir().to_path_buf();
        let _ = std::fs::create_dir_all(&dir);
        log_file = Some(dir.join("rulebox.log"));
    }
    // Rule tests print their own report; the rule's logs only when asked.
    let level = match (&cli.command, cli.log_level.as_str()) {
        (Command::Test { .. }, "info") => "warn",
        (_, l) => l,
    };
    if let Err(e) = init_logging(level, log_file.as_deref()) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    // A person at the terminal: a progress line and summary tables.
    let interactive = log_file.is_none() && std::io::stderr().is_terminal();
    if interactive {
        rulebox::terminal::progress::enable();
    }
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Inspect { module, json, keys } => inspect(&module, json, &keys),
        Command::Test { paths, module } => rule_tests(&paths, module.as_deref()),
        Command::Alerts { file } => alerts(&file),
        Command::Top {
            address,
            interval,
            iterations,
        } => top(&address, interval, iterations),
        Command::New(New::Rule { name, dir, sdk }) => {
            match rulebox::scaffold::new_rule(&name, dir.as_deref(), sdk.as_deref()) {
                Ok(said) => {
                    print!("{said}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Run { config, data_dir } => match run(&config, data_dir.as_deref(), interactive) {
            Ok(code) => code,
            Err(e) => {
                tracing::error!("{e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn init_logging(level: &str, log_file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .context("bad --log-level")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        // Colours only for a person at a terminal, not in files or pipes.
        // Through the progress line's writer, which clears it first.
        None => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(|| LogWriter)
            .init(),
    }
    Ok(())
}

fn load(
    config: &std::path::Path,
    data_dir: Option<&std::path::Path>,
    rt: &Runtime,
) -> Result<topology::Built, rulebox::config::ConfigErrors> {
    topology::build(Loaded::read(config)?.with_data_dir(data_dir), rt)
}

fn validate(config: &std::path::Path) -> ExitCode {
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match load(config, None, &rt) {
        Ok(built) => {
            println!("{}: ok", config.display());
            for (id, outs) in built.outputs() {
                println!(
                    "  transform {id}: outputs {id}{}",
                    outs.iter()
                        .map(|o| format!(", {id}.{o}"))
                        .collect::<String>()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}

/// `rulebox test`: a line per test, each difference under a failed one,
/// a total; exit 0 (all passed), 1 (one failed), 2 (one could not run).
fn rule_tests(paths: &[PathBuf], module: Option<&std::path::Path>) -> ExitCode {
    let files = match rulebox::ruletest::test_files(paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("error: no test files (*.toml) in {paths:?}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut plugins = Default::default();
    let (mut failed, mut broken) = (0, 0);
    for f in &files {
        match rulebox::ruletest::run_file(&rt, &mut plugins, f, module) {
            Ok(o) if o.failures.is_empty() => println!("ok     {} ({})", o.name, f.display()),
            Ok(o) => {
                failed += 1;
                println!("FAILED {} ({})", o.name, f.display());
                o.failures.iter().for_each(|l| println!("    {l}"));
            }
            Err(e) => {
                broken += 1;
                println!("ERROR  {}: {e}", f.display());
            }
        }
    }
    let passed = files.len() - failed - broken;
    println!(
        "{} tests: {passed} passed, {failed} failed, {broken} could not run",
        files.len()
    );
    match (failed, broken) {
        (0, 0) => ExitCode::SUCCESS,
        (_, 0) => ExitCode::from(1),
        _ => ExitCode::from(2),
    }
}

fn inspect(module: &std::path::Path, json: bool, keys: &[String]) -> ExitCode {
    use std::io::Write as _;
    match rulebox::inspect::inspect(module, keys) {
        Ok(found) => {
            let text = match json {
                true => format!("{:#}\n", found.json()),
                false => found.text(),
            };
            // A closed pipe (`| head`) is not an error of ours.
            let _ = std::io::stdout().write_all(text.as_bytes());
            match found.verified {
                Some(Err(_)) => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(
    config: &std::path::Path,
    data_dir: Option<&std::path::Path>,
    interactive: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let rt = Runtime::new()?;
    let built = load(config, data_dir, &rt)?;
    // Held until the process ends.
    let _lock = match rulebox::durable::lock_data_dir(built.data_dir()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = tokio_rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
            }
            let _ = tx.send(true);
        });
        tokio::spawn(reload_on_hangup());
        topology::run(built, rx).await
    });
    if interactive {
        let peak = topology::peak_rss_kib();
        eprint!(
            "\n{}",
            topology::summary_table(&summary, started.elapsed(), peak)
        );
    } else {
        report(&summary);
    }
    Ok(if summary.errors() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// SIGHUP: every listener reads its certificate, key and client CAs
/// again (connections open keep theirs); nothing else is reloaded.
async fn reload_on_hangup() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!(signal = "SIGHUP", "reloading TLS certificates");
        rulebox::tls::reload_all();
    }
}

fn report(s: &Summary) {
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    for (id, st) in &s.sources {
        let (lost, oversize) = (g(&st.lost), g(&st.oversize));
        let (refused_tls, refused_unauthorized) = (g(&st.refused_tls), g(&st.refused_unauthorized));
        let (refused_malformed, redelivered) = (g(&st.refused_malformed), g(&st.redelivered));
        tracing::info!(source = %id, events = g(&st.events), bytes = g(&st.bytes), lost, oversize, refused_tls, refused_unauthorized, refused_malformed, redelivered, "source done");
    }
    for (id, t) in &s.transforms {
        tracing::info!(
            transform = %id,
            events_in = g(&t.events_in),
            events_out = g(&t.events_out),
            records = g(&t.records),
            malformed = g(&t.malformed),
            not_object = g(&t.not_object),
            oversize = g(&t.oversize),
            invalid_utf8 = g(&t.invalid_utf8),
            dropped = g(&t.dropped),
            invalid_results = g(&t.invalid_results),
            plugin_failures = g(&t.plugin_failures),
            restarts = g(&t.restarts),
            quarantined = g(&t.quarantined),
            unprocessed = g(&t.unprocessed),
            dead_lettered = g(&t.dead_lettered),
            error_dropped = g(&t.error_dropped),
            plugin_time_ms = g(&t.plugin_time_us) / 1000,
            slowest_call_ms = g(&t.slowest_call_us) as f64 / 1000.0,
            slow_calls = g(&t.slow_calls),
            "transform done"
        );
    }
    for id in &s.quarantined {
        tracing::error!(transform = %id, "plugin was quarantined during the run");
    }
    for (id, k) in &s.sinks {
        tracing::info!(sink = %id, events = g(&k.events), bytes = g(&k.bytes), write_errors = g(&k.write_errors), retries = g(&k.retries), spooled = g(&k.spooled), unspooled = g(&k.unspooled), buffer_dropped = g(&k.buffer_dropped), replayed = g(&k.replayed), duplicates = g(&k.duplicates), "sink done");
    }
    tracing::info!(
        events_in = s.events_in(),
        errors = s.errors(),
        state_errors = s.state_errors,
        peak_rss_kib = topology::peak_rss_kib(),
        "summary"
    );
}

fn alerts(file: &std::path::Path) -> ExitCode {
    let text = if file == std::path::Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).map(|_| buf)
    } else {
        std::fs::read(file)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let (table, skipped) = rulebox::terminal::alerts::table(&text);
    if table.is_empty() {
        println!("no alerts in {}", file.display());
    } else {
        print!("{}", table.render());
    }
    if skipped.malformed + skipped.not_alerts > 0 {
        eprintln!(
            "({} lines not alerts, {} not JSON objects: skipped)",
            skipped.not_alerts, skipped.malformed
        );
    }
    ExitCode::SUCCESS
}

fn top(address: &str, interval: f64, iterations: Option<u64>) -> ExitCode {
    let every = std::time::Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
    let redraw = std::io::stdout().is_terminal();
    match rulebox::terminal::top::run(address, every, iterations, redraw) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: cannot read {address}/metrics: {e} (is [api] address set in the pipeline's configuration?)"
            );
            ExitCode::from(1)
        }
    }
}
