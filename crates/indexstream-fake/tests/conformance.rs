//! Runs OpenSearch's REST YAML tests against the fake cluster (or any cluster).
//!
//! `cargo test -p indexstream-fake --test conformance [-- FILTER]`
//!
//! - `CONFORMANCE_DIR`: the tests directory (default `../shared/conformance/opensearch/tests`
//!   beside the repository); API specs are read from `$CONFORMANCE_DIR/../api`.
//! - `CONFORMANCE_URL`: run against that cluster instead of an in-process fake. The runner
//!   deletes every index between tests, as OpenSearch's own runner does: never point it at a
//!   cluster holding data you care about.
//!
//! Prints a line per test and ends with `N passed, N failed, N skipped`.
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod conformance {
    pub mod runner;
    pub mod spec;
    pub mod yaml_test;
}

use std::path::PathBuf;
use std::process::ExitCode;

use conformance::runner::{Outcome, Runner};

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let tests_dir = std::env::var_os("CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance/opensearch/tests")
        });
    let api_dir = tests_dir.join("../api");
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
        let mut runner = Runner::new(url, specs).await;
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        for file in files {
            let rel = file
                .strip_prefix(&tests_dir)
                .unwrap_or(&file)
                .display()
                .to_string();
            let suite = match conformance::yaml_test::parse_file(&file) {
                Ok(s) => s,
                Err(e) => {
                    println!("FAIL {rel}: cannot parse: {e}");
                    failed += 1;
                    continue;
                }
            };
            for test in &suite.tests {
                let name = format!("{rel} :: {}", test.name);
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                match runner.run_test(&suite, test).await {
                    Outcome::Passed => {
                        passed += 1;
                        println!("ok   {name}");
                    }
                    Outcome::Skipped(why) => {
                        skipped += 1;
                        println!("skip {name} ({why})");
                    }
                    Outcome::Failed(why) => {
                        failed += 1;
                        println!("FAIL {name}\n     {why}");
                    }
                }
            }
        }
        println!("{passed} passed, {failed} failed, {skipped} skipped");
        if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}
