//! Times the population measures: `cargo run --release -p insilico-population --example
//! bench_population [stimuli] [units] [rsa_stimuli] [repeats]` (defaults 10000 512 2000 3).
//! Compare with `python crates/insilico-population/bench/population_reference.py --svcca PATH`
//! on the same machine, or run both with `insilico bench population --python PY --svcca PATH`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let get = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let timings = insilico_population::bench_population(
        get(0, 10_000),
        get(1, 512),
        get(2, 2_000),
        get(3, 3),
    )?;
    println!("task,stimuli,units,seconds");
    for t in timings {
        println!("{},{},{},{:.4}", t.task, t.stimuli, t.units, t.seconds);
    }
    Ok(())
}
