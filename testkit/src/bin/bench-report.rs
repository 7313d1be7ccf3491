//! Prints the figures in `target/bench/results.json` as a table (the last step of `make bench`).

fn main() {
    let path = anineplus_testkit::bench::results_path();
    let figures = anineplus_testkit::bench::load();
    if figures.is_empty() {
        eprintln!("no benchmark figures in {}", path.display());
        std::process::exit(1);
    }
    println!("\nBenchmark figures ({}):\n", path.display());
    print!("{}", anineplus_testkit::bench::table(&figures));
}
