//! Runs OpenSearch's REST YAML tests against the fake cluster (or any cluster).
//!
//! `cargo test -p indexstream-fake --test conformance [-- FILTER]`
//!
//! - `CONFORMANCE_DIR`: the tests directory (default `../shared/conformance/opensearch/tests`
//!   beside the repository); API specs are read from `$CONFORMANCE_DIR/../api`. OpenSearch's
//!   whole core corpus comes from the `org.opensearch:rest-api-spec` jar:
//!   `CONFORMANCE_DIR=$(scripts/rest-api-spec)/test`.
//! - `CONFORMANCE_URL`: run against that cluster instead of an in-process fake.
//! - `CONFORMANCE_REFERENCE_URL`: a real cluster to compare with. Every test runs there first,
//!   then against the fake (or `CONFORMANCE_URL`); the run fails when a test of an API the
//!   fake claims passes on the reference but not on the fake, unless the fake's README names
//!   it as a deliberate gap (and fails too when a named gap passes on the fake after all).
//! - `CONFORMANCE_TABLE`: write the per-folder passed / failed / skipped table (Markdown) there.
//! - `CONFORMANCE_SAVE_REFERENCE`: save the reference's outcomes to that file (JSON Lines);
//!   `CONFORMANCE_REFERENCE_FILE`: compare with saved outcomes instead of a reference URL (a
//!   quicker loop while changing the fake).
//!
//! The runner deletes every index between tests, as OpenSearch's own runner does: never point
//! it at a cluster holding data you care about.
//!
//! Prints a line per test, a per-folder table, and ends with `N passed, N failed, N skipped`.
//! Without a reference the run fails on any failed test (the shared corpus must pass whole).
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod conformance {
    pub mod claims;
    pub mod runner;
    pub mod spec;
    pub mod yaml_test;
}

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use conformance::runner::{Outcome, Runner};

/// One test's outcome, by file and name.
struct Result {
    folder: String,
    name: String,
    outcome: Outcome,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }

    fn cell(&self) -> String {
        format!("{} / {} / {}", self.passed, self.failed, self.skipped)
    }
}

/// Runs every test of every file against `url`, printing a line per test.
async fn run_all(
    label: &str,
    url: String,
    specs: &std::collections::HashMap<String, conformance::spec::ApiSpec>,
    tests_dir: &Path,
    files: &[PathBuf],
    filter: Option<&str>,
    skips: &[String],
) -> Vec<Result> {
    let mut runner = Runner::new(url, specs.clone()).await;
    let mut out = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(tests_dir)
            .unwrap_or(file)
            .display()
            .to_string();
        let folder = rel.split('/').next().unwrap_or_default().to_string();
        let suite = match conformance::yaml_test::parse_file(file) {
            Ok(s) => s,
            Err(e) => {
                println!("{label} FAIL {rel}: cannot parse: {e}");
                out.push(Result {
                    folder,
                    name: format!("{rel} :: (file)"),
                    outcome: Outcome::Failed(format!("cannot parse: {e}")),
                });
                continue;
            }
        };
        for test in &suite.tests {
            let name = format!("{rel} :: {}", test.name);
            if filter.is_some_and(|f| !name.contains(f))
                || skips.iter().any(|s| name.contains(s.as_str()))
            {
                continue;
            }
            let outcome = runner.run_test(&rel, &suite, test).await;
            match &outcome {
                Outcome::Passed => println!("{label} ok   {name}"),
                Outcome::Skipped(why) => println!("{label} skip {name} ({why})"),
                Outcome::Failed(why) => println!("{label} FAIL {name}\n     {why}"),
            }
            out.push(Result {
                folder: folder.clone(),
                name,
                outcome,
            });
        }
    }
    out
}

fn save_results(path: &Path, results: &[Result]) -> std::io::Result<()> {
    let mut text = String::new();
    for r in results {
        let (outcome, why) = match &r.outcome {
            Outcome::Passed => ("passed", ""),
            Outcome::Failed(w) => ("failed", w.as_str()),
            Outcome::Skipped(w) => ("skipped", w.as_str()),
        };
        text.push_str(&serde_json::json!({"folder": r.folder, "name": r.name, "outcome": outcome, "why": why}).to_string());
        text.push('\n');
    }
    std::fs::write(path, text)
}

fn load_results(path: &Path) -> std::io::Result<Vec<Result>> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(std::io::Error::other)?;
        let why = v["why"].as_str().unwrap_or_default().to_string();
        out.push(Result {
            folder: v["folder"].as_str().unwrap_or_default().to_string(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            outcome: match v["outcome"].as_str() {
                Some("passed") => Outcome::Passed,
                Some("skipped") => Outcome::Skipped(why),
                _ => Outcome::Failed(why),
            },
        });
    }
    Ok(out)
}

fn main() -> ExitCode {
    // Arguments as libtest takes them (`cargo test -- FILTER --skip PATTERN`): a run of the
    // whole workspace passes the same ones to every test binary.
    let mut filter: Option<String> = None;
    let mut skips: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--skip" => skips.extend(args.next()),
            a if a.starts_with('-') => {}
            _ => filter = Some(a),
        }
    }
    let tests_dir = std::env::var_os("CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance/opensearch/tests")
        });
    let api_dir = tests_dir.join("../api");
    let reference = std::env::var("CONFORMANCE_REFERENCE_URL").ok();
    let table_path = std::env::var_os("CONFORMANCE_TABLE").map(PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let (url, _cluster) = match std::env::var("CONFORMANCE_URL") {
            Ok(url) => (url, None),
            Err(_) => {
                let cluster = indexstream_fake::FakeCluster::start()
                    .await
                    .expect("start the fake cluster");
                (cluster.url(), Some(cluster))
            }
        };
        let specs = match conformance::spec::load(&api_dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot read API specs in {}: {e}", api_dir.display());
                return ExitCode::FAILURE;
            }
        };
        let files = match conformance::yaml_test::find_files(&tests_dir) {
            Ok(f) if !f.is_empty() => f,
            Ok(_) => {
                eprintln!("no YAML tests under {}", tests_dir.display());
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("cannot read tests in {}: {e}", tests_dir.display());
                return ExitCode::FAILURE;
            }
        };
        let filter = filter.as_deref();
        let reference_results = match (&reference, std::env::var_os("CONFORMANCE_REFERENCE_FILE")) {
            (Some(r), _) => {
                Some(run_all("reference", r.clone(), &specs, &tests_dir, &files, filter, &skips).await)
            }
            (None, Some(path)) => match load_results(Path::new(&path)) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("cannot read {}: {e}", Path::new(&path).display());
                    return ExitCode::FAILURE;
                }
            },
            (None, None) => None,
        };
        if let (Some(r), Some(path)) = (&reference_results, std::env::var_os("CONFORMANCE_SAVE_REFERENCE")) {
            if let Err(e) = save_results(Path::new(&path), r) {
                eprintln!("cannot write {}: {e}", Path::new(&path).display());
                return ExitCode::FAILURE;
            }
        }
        let label = if _cluster.is_some() { "fake" } else { "cluster" };
        let results = run_all(label, url, &specs, &tests_dir, &files, filter, &skips).await;
        if results.is_empty() {
            eprintln!("no test matched (filter {filter:?}, skips {skips:?}): nothing was checked");
            return ExitCode::FAILURE;
        }

        let mut total = Tally::default();
        let mut folders: BTreeMap<String, (Tally, Tally)> = BTreeMap::new();
        for r in &results {
            total.add(&r.outcome);
            folders.entry(r.folder.clone()).or_default().1.add(&r.outcome);
        }
        for r in reference_results.iter().flatten() {
            folders.entry(r.folder.clone()).or_default().0.add(&r.outcome);
        }
        let mut table = String::new();
        if reference_results.is_some() {
            table.push_str("| folder | claimed | real node: passed / failed / skipped | fake: passed / failed / skipped |\n|---|---|---|---|\n");
        } else {
            table.push_str("| folder | claimed | passed / failed / skipped |\n|---|---|---|\n");
        }
        let (mut real_sum, mut fake_sum) = (Tally::default(), Tally::default());
        for (folder, (real, fake)) in &folders {
            let claimed = if conformance::claims::claimed(folder) { "yes" } else { "" };
            real_sum.passed += real.passed;
            real_sum.failed += real.failed;
            real_sum.skipped += real.skipped;
            fake_sum.passed += fake.passed;
            fake_sum.failed += fake.failed;
            fake_sum.skipped += fake.skipped;
            if reference_results.is_some() {
                table.push_str(&format!("| {folder} | {claimed} | {} | {} |\n", real.cell(), fake.cell()));
            } else {
                table.push_str(&format!("| {folder} | {claimed} | {} |\n", fake.cell()));
            }
        }
        if reference_results.is_some() {
            table.push_str(&format!("| **all** | | {} | {} |\n", real_sum.cell(), fake_sum.cell()));
        }
        println!("\n{table}");
        if let Some(path) = &table_path {
            if let Err(e) = std::fs::write(path, &table) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        println!(
            "{} passed, {} failed, {} skipped",
            total.passed, total.failed, total.skipped
        );

        let Some(reference_results) = reference_results else {
            return if total.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        };
        // The fake's claim: on the APIs it serves, it passes what the real node passes.
        let gaps = conformance::claims::deliberate_gaps();
        let fake_outcome: BTreeMap<&str, &Outcome> =
            results.iter().map(|r| (r.name.as_str(), &r.outcome)).collect();
        let mut broken = Vec::new();
        let file_of = |name: &str| name.split(" :: ").next().unwrap_or_default().to_string();
        let mut files_with_gaps = std::collections::BTreeSet::new();
        for r in &reference_results {
            if !conformance::claims::claimed(&r.folder) || !matches!(r.outcome, Outcome::Passed) {
                continue;
            }
            let fake_passed = matches!(fake_outcome.get(r.name.as_str()), Some(Outcome::Passed));
            let file = file_of(&r.name);
            let named = gaps.contains_key(r.name.as_str());
            let file_named = gaps.contains_key(file.as_str());
            if !fake_passed {
                files_with_gaps.insert(file.clone());
            }
            match (fake_passed, named, file_named) {
                (false, false, false) => broken.push(format!("passes on the real node, not on the fake: {}", r.name)),
                (true, true, _) => broken.push(format!("named as a deliberate gap in the fake's README but passes: {}", r.name)),
                _ => {}
            }
        }
        if filter.is_none() && skips.is_empty() {
            let corpus_files: std::collections::BTreeSet<String> =
                reference_results.iter().map(|r| file_of(&r.name)).collect();
            for name in gaps.keys() {
                let file = file_of(name);
                if !corpus_files.contains(&file) {
                    continue;
                }
                let whole_file = !name.contains(" :: ");
                if whole_file && !files_with_gaps.contains(&file) {
                    broken.push(format!("the fake's README names {name} as a gap, but the fake passes every test of it that the real node passes"));
                }
                if !whole_file && !reference_results.iter().any(|r| r.name == *name) {
                    broken.push(format!("the fake's README names a gap that is not a test of this corpus: {name}"));
                }
            }
        }
        if broken.is_empty() {
            println!("the fake passes every test of its claimed APIs that the real node passes ({} named gaps)", gaps.len());
            ExitCode::SUCCESS
        } else {
            for b in &broken {
                println!("CLAIM {b}");
            }
            println!("{} claim violations", broken.len());
            ExitCode::FAILURE
        }
    })
}
