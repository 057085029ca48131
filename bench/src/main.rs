//! coronet's benchmark harness: `cargo run --release -p coronet-bench -- <scenario>`.
//!
//! Scenarios: `runtime` (spawn+join, yield, resident memory per parked coroutine).

mod runtime_scenarios;
mod util;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("help");
    match scenario {
        "runtime" => runtime_scenarios::run(&args[1..]),
        "park-rss" => runtime_scenarios::park_rss_child(&args[1..]),
        _ => {
            eprintln!(
                "usage: coronet-bench <scenario>\n\nscenarios:\n  runtime    spawn+join, yield, RSS per parked coroutine"
            );
            std::process::exit(if scenario == "help" || scenario == "--help" { 0 } else { 2 });
        }
    }
}
