//! Intent matching on the device: every held-out question embedded by the student and matched
//! to the nearest stored intent by cosine (`bert_core::intent`); each pick and cosine must
//! equal the host's bit for bit. Also the instructions per forward at 32 and 64 tokens.

use alloc::format;
use alloc::string::String;

use bert_core::device_blob::DeviceModel;
use bert_core::intent::nearest;
use bert_core::model::low_ram::sentence_embedding;
use bert_core::BertModel;
use cortex_m_semihosting::hprint;

use crate::task::{le_u32, Task};
use crate::{clock, Fixed4, MAX_TOKENS};

/// Matches every question and compares with the host. Returns whether all agreed.
pub fn match_questions(
    student: &DeviceModel<'_>,
    encoder: &BertModel<'_>,
    task: &Task<'_>,
    arena: &mut [f32],
    ipk: u64,
) -> Result<bool, String> {
    let (mut agree, mut right) = (true, 0);
    let (mut most, mut most_tokens) = (0u64, 0);
    for (i, (label, sentence)) in task.questions.iter().enumerate() {
        let start = clock::ticks();
        let ids = student.tokenizer.encode_truncated(sentence, MAX_TOKENS);
        let out = sentence_embedding(encoder, &ids, arena).map_err(|e| format!("{e}"))?;
        let (pick, cos) = nearest(&task.anchors, out.mean).ok_or("task: no intents")?;
        let spent = (clock::ticks() - start) * ipk / 1000;
        if spent > most {
            (most, most_tokens) = (spent, ids.len());
        }
        let want = task
            .expected_matches
            .get(8 * i..8 * i + 8)
            .ok_or("task: answers missing")?;
        let same = pick as u32 == le_u32(want) && cos.to_bits() == le_u32(&want[4..]);
        agree &= same;
        right += usize::from(pick == *label);
        hprint!(
            "{:>2} {:<44} -> {:<12} cos {} ({} tokens, {} instr){}\n",
            i,
            sentence,
            task.names.get(pick).copied().unwrap_or("?"),
            Fixed4(cos),
            ids.len(),
            spent,
            if same { "" } else { "  DIFFERS FROM THE HOST" }
        );
    }
    hprint!(
        "intent matching: {}/{} held-out questions right; picks and cosines == host: {}\n\
         slowest question (tokenizer + forward + match): {} instructions at {} tokens\n",
        right,
        task.questions.len(),
        agree,
        most,
        most_tokens
    );
    Ok(agree)
}

/// Instructions of one forward at 32 and at 64 tokens (the longest input the RAM budget is
/// for), from a long command cut to length.
pub fn forward_at_lengths(
    student: &DeviceModel<'_>,
    encoder: &BertModel<'_>,
    arena: &mut [f32],
    ipk: u64,
) -> Result<(), String> {
    let long = "please turn on the lights in the kitchen and the living room, set the \
                thermostat to twenty one degrees, play some relaxing jazz at low volume, \
                lock the front door and remind me to buy milk, eggs and bread tomorrow \
                morning before i leave for work at eight";
    for tokens in [32, MAX_TOKENS] {
        let ids = student.tokenizer.encode_truncated(long, tokens);
        if ids.len() != tokens {
            return Err(format!(
                "the long text gave {} tokens, not {tokens}",
                ids.len()
            ));
        }
        let start = clock::ticks();
        sentence_embedding(encoder, &ids, arena).map_err(|e| format!("{e}"))?;
        let spent = (clock::ticks() - start) * ipk / 1000;
        hprint!("forward at {} tokens: {} instructions\n", tokens, spent);
    }
    Ok(())
}
