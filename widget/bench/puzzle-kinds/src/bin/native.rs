//! `native <kind> <arguments…>`: five runs of one kind of work on this core; prints the
//! median milliseconds.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ms: Vec<f64> = (0..5u32)
        .map(|run| {
            let started = Instant::now();
            let out = match args[0].as_str() {
                "argon2id" => u32::from(puzzle_kinds::argon2id(
                    args[1].parse().unwrap(),
                    args[2].parse().unwrap(),
                    run,
                )),
                "rsw" => puzzle_kinds::rsw(&args[1], &args[2], args[3].parse().unwrap()),
                "rsw-issuer" => {
                    puzzle_kinds::rsw_issuer(&args[1], &args[2], &args[3], &args[4], &args[5])
                }
                #[cfg(feature = "edge")]
                "rsw-edge" => {
                    puzzle_kinds::rsw_edge(&args[1], &args[2], args[3].parse().unwrap(), run)
                }
                kind => panic!("unknown kind {kind}"),
            };
            std::hint::black_box(out);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("{:.2}", ms[2]);
}
