//! Arbitrary bytes as a `config.json` of any family (the seeds are every family's real and
//! tiny configs): a config or a typed error, never a panic; a config that parses is internally
//! consistent (a head size that divides, limits kept) and prints.
#![no_main]
use libfuzzer_sys::fuzz_target;

use bert_core::BertConfig;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = BertConfig::from_json(&text) else { return };
    assert!(config.hidden_size > 0 && config.num_attention_heads > 0);
    assert_eq!(config.head_dim() * config.num_attention_heads, config.hidden_size);
    assert!(config.max_sequence_length() > 0);
    let _ = config.feed_forward_width();
    let _ = config.num_labels();
    let _ = format!("{config}");
    // The parsed map parses again to the same config.
    let again = BertConfig::from_map(config.raw.clone()).expect("a config's own fields parse");
    assert_eq!(format!("{again}"), format!("{config}"));
});
