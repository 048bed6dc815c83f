//! A training step allocates nothing after warm-up: forward, backward, dropout masks and
//! gradient clipping run in the buffers the workspace made once, on two threads, and AdamW's
//! update walks the parameters in place (`AdamW::step_params`, no list of them). Counted with a
//! global allocator (its own test binary, so no other test's allocations are counted).
mod common;
mod counting;

use bert_core::safetensors::serialize;
use bert_core::train::dropout::Dropout;
use bert_core::train::optim::AdamW;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::{Batch, BertConfig, BertForSequenceClassification, Dtype, Weights};
use common::*;
use counting::bytes_during;

#[test]
fn training_steps_allocate_nothing_after_warm_up() {
    let dir = minilm();
    let base = std::fs::read(dir.join("model.safetensors")).unwrap();
    let mut raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    raw.insert("num_labels".into(), 3.into());
    let config = BertConfig::from_map(raw).unwrap();
    let h = config.hidden_size;
    let w: Vec<u8> = (0..3 * h)
        .flat_map(|i| ((i % 7) as f32 * 0.01).to_le_bytes())
        .collect();
    let b = vec![0u8; 12];
    let head = serialize(
        &[
            ("classifier.weight", Dtype::F32, &[3, h], &w),
            ("classifier.bias", Dtype::F32, &[3], &b),
        ],
        &[],
    )
    .unwrap();
    let weights = Weights::from_buffers(&[&base, &head]).unwrap();
    let mut model = BertForSequenceClassification::load(&config, &weights).unwrap();
    let (mut grads, mut ws) = {
        let t = SeqClsTrainer::new(&model).unwrap();
        (t.grads(), t.workspace(4, 24).unwrap())
    };
    ws.set_threads(2, &bert_std::batching::RayonJoin);
    let mut opt = AdamW::new(&grads, 0.01);
    // Two sequences of different lengths, right-padded.
    let ids: Vec<u32> = (0..48).map(|i| 1000 + (i * 37) % 5000).collect();
    let mut mask = vec![1u32; 48];
    mask[40..].fill(0);
    let types = vec![0u32; 48];
    let batch = Batch {
        input_ids: &ids,
        token_type_ids: Some(&types),
        attention_mask: Some(&mask),
        batch_size: 2,
        seq_len: 24,
    };
    let labels = [2i64, 0];
    let mut step = |model: &mut BertForSequenceClassification<'_>, k: u64| {
        ws.set_dropout(Some(Dropout {
            hidden: 0.1,
            attention: 0.1,
            classifier: 0.1,
            embedding: None,
            seed: k,
        }));
        let (core, loss) = bytes_during(|| {
            grads.zero_on(&bert_std::batching::RayonJoin, 2);
            let loss = SeqClsTrainer::new(model)
                .unwrap()
                .loss_and_grads(&batch, &labels, &mut ws, &mut grads)
                .unwrap();
            grads.clip_norm_on(1.0, &bert_std::batching::RayonJoin, 2);
            loss
        });
        let (update, ()) = bytes_during(|| {
            opt.step_params(model, &grads, 1e-4, &bert_std::batching::RayonJoin, 2)
                .unwrap();
        });
        (core, update, loss)
    };
    // The steps run inside a rayon pool, as `bert train` runs them (joins from outside a pool
    // queue their jobs through a shared injector, which allocates now and then).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        // Warm-up: the first steps start the threads and make the weights owned.
        for k in 0..2 {
            step(&mut model, k);
        }
        for k in 2..6 {
            let (core, update, loss) = step(&mut model, k);
            assert!(loss.is_finite());
            assert_eq!(
                core, 0,
                "step {k}: forward + backward + clipping allocated {core} bytes"
            );
            assert_eq!(
                update, 0,
                "step {k}: the AdamW update allocated {update} bytes"
            );
        }
    });
}
