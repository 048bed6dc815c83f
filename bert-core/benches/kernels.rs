//! The matmul kernels on BERT's shapes, every instruction set this CPU runs, f32 (packed per
//! product and pre-packed) and int8 (dynamic activation quantization included).
//!
//! `cargo bench -p bert-core --features std --bench kernels` prints criterion's timings; the
//! throughput is in multiply-adds (Kelem/s = thousands of MACs per second; ×2 for flops).
//! Compare with the machine's FMA peak: `cargo run --release --example bench_forward --
//! --fma-peak`.

use std::borrow::Cow;

use bert_core::kernels::gemm::{matmul_with, GemmNeeds, GemmScratch, PackedWeight, Rhs};
use bert_core::kernels::isa::available;
use bert_core::kernels::{MatMut, MatRef};
use bert_core::weights::{Matrix, Storage};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn pseudo(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    // (rows, in, out): bert-base's FFN up-projection and attention output at 128 tokens,
    // MiniLM's FFN up-projection.
    for (m, k, n) in [(128, 768, 3072), (128, 768, 768), (128, 384, 1536)] {
        let mut g = c.benchmark_group(format!("linear {m}x{k}x{n}"));
        g.sample_size(20)
            .throughput(Throughput::Elements((m * k * n) as u64));
        let x = pseudo(m * k, 1);
        let w = pseudo(n * k, 2);
        let f32_weight = Matrix {
            rows: n,
            cols: k,
            storage: Storage::F32(Cow::Borrowed(&w)),
        };
        let q: Vec<i8> = w.iter().map(|v| (v * 254.0) as i8).collect();
        let scales = vec![0.01; n];
        let i8_weight = Matrix {
            rows: n,
            cols: k,
            storage: Storage::I8 {
                values: Cow::Borrowed(&q),
                scales: Cow::Borrowed(&scales),
            },
        };
        let mut scratch = GemmScratch::new(GemmNeeds {
            rows: m,
            depth: k,
            int8: true,
        });
        let mut out = vec![0.0; m * n];
        for isa in available() {
            let packed = PackedWeight::with_isa(isa, &f32_weight);
            let packed_i8 = PackedWeight::with_isa(isa, &i8_weight);
            for (name, rhs) in [
                ("f32", Rhs::WeightT(&f32_weight)),
                ("f32 prepacked", Rhs::PackedT(&packed)),
                ("int8", Rhs::WeightT(&i8_weight)),
                ("int8 prepacked", Rhs::PackedT(&packed_i8)),
            ] {
                g.bench_function(format!("{} {name}", isa.name()), |b| {
                    b.iter(|| {
                        matmul_with(
                            isa,
                            MatMut::dense(&mut out, m, n),
                            MatRef::dense(&x, m, k),
                            rhs,
                            false,
                            1.0,
                            &mut scratch,
                        )
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
