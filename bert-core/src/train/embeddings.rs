//! The embeddings' share of training: `word[id] + token_type[t] + position[p]` → LayerNorm →
//! dropout, at the embedding width, then (ELECTRA's narrower tables) `embeddings_project` to
//! the hidden width; and the backward of all that, down to the rows of the three tables.

use super::dropout::{self, Dropout};
use super::slots::EncoderSlots;
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::arch::PositionScheme;
use crate::error::Result;
use crate::model::{Batch, BertEmbeddings, BertModel};

/// The embeddings of the `t` packed rows into `ws.x` (`[t, hidden]`), saving what the
/// backward needs: the LayerNorm's normalized rows and inverse deviations, the dropout mask,
/// and with a projection its input (`ws.emb_out`).
pub(crate) fn forward(
    e: &BertEmbeddings<'_>,
    batch: &Batch<'_>,
    t: usize,
    ws: &mut TrainWorkspace,
) -> Result<()> {
    let w = e.width();
    let x = match e.project {
        Some(_) => &mut ws.emb_out[..t * w],
        None => &mut ws.x[..t * w],
    };
    let tokens = ws.packed[..t].iter().map(|&i| i as usize);
    e.sum_tokens(batch, tokens, x, &mut ws.row);
    let ln = &e.layer_norm;
    let (par, lanes) = (ws.par, ws.lanes.len());
    threads::layer_norm_save(
        par,
        lanes,
        x,
        (&ln.weight, &ln.bias, ln.eps),
        &mut ws.emb_xhat[..t * w],
        &mut ws.emb_rstd[..t],
    );
    if let Some((d, p)) = embedding_dropout(ws.dropout) {
        let spec = (d.seed, dropout::EMBEDDINGS_STREAM, p);
        let mask = &mut ws.masks.embeddings[..t * w];
        threads::fill_rows(par, lanes, mask, &ws.packed[..t], w, spec);
        dropout::apply(x, mask);
    }
    if let Some(p) = &e.project {
        threads::linear_forward(par, p, &ws.emb_out[..t * w], t, &mut ws.x, &mut ws.lanes);
    }
    Ok(())
}

/// The step's dropout and its probability after the embeddings, when on.
fn embedding_dropout(d: Option<Dropout>) -> Option<(Dropout, f32)> {
    d.map(|d| (d, d.embedding.unwrap_or(d.hidden)))
        .filter(|&(_, p)| p > 0.0)
}

/// The backward of [`forward`] from `ws.dx` (`[t, hidden]`, the gradient of its output):
/// the projection's gradients (when there is one), then the LayerNorm's, then the rows of
/// the tables, into their [`EncoderSlots`]. As `torch.nn.Embedding(padding_idx=...)`, the
/// padding row of the word table (and of RoBERTa's position table) gets no gradient.
pub(crate) fn backward(
    bert: &BertModel<'_>,
    batch: &Batch<'_>,
    t: usize,
    slots: &EncoderSlots,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let e = &bert.embeddings;
    let w = e.width();
    let par = ws.par;
    // With a projection the gradient of its input goes to `dctx` (free by now).
    let dy: &mut [f32] = match (&e.project, slots.project) {
        (Some(p), Some(slot)) => {
            let (gw, gb) = grads.pair(slot, slot + 1);
            let weight = super::slots::weight(p)?;
            let n = p.out_features();
            threads::linear_backward(
                par,
                &ws.emb_out[..t * w],
                weight,
                &ws.dx[..t * n],
                (t, w, n),
                Some((&mut ws.dctx[..t * w], false)),
                gw,
                Some(gb),
                &mut ws.lanes,
            );
            &mut ws.dctx[..t * w]
        }
        _ => &mut ws.dx[..t * w],
    };
    if embedding_dropout(ws.dropout).is_some() {
        dropout::apply(dy, &ws.masks.embeddings[..t * w]);
    }
    {
        let (gw, gb) = slots.norm.of(grads);
        threads::layer_norm_backward(
            par,
            ws.lanes.len(),
            (dy, &ws.emb_xhat[..t * w], &ws.emb_rstd[..t]),
            &e.layer_norm.weight,
            &mut ws.da[..t * w],
            false,
            gw,
            gb,
        );
    }
    let pad = bert.config.pad_token_id as usize;
    let position_pad = match e.positions {
        PositionScheme::PaddingOffset { padding_idx } => Some(padding_idx),
        _ => None,
    };
    for r in 0..t {
        let i = ws.packed[r] as usize;
        let de = &ws.da[r * w..(r + 1) * w];
        let id = batch.input_ids[i] as usize;
        let typ = batch.token_type_ids.map_or(0, |tt| tt[i]) as usize;
        let position = e.position(batch, i);
        let rows = [
            Some(0).filter(|_| id != pad).map(|s| (s, id)),
            slots
                .position
                .filter(|_| Some(position) != position_pad)
                .map(|s| (s, position)),
            slots.token_type.map(|s| (s, typ)),
        ];
        for (slot, index) in rows.into_iter().flatten() {
            let g = &mut grads.slot(slot)[index * w..(index + 1) * w];
            g.iter_mut().zip(de).for_each(|(a, b)| *a += b);
        }
    }
    Ok(())
}
