//! The embeddings' share of training: `word[id] + token_type[t] + position[p]` → LayerNorm →
//! dropout, at the embedding width, then (ELECTRA's narrower tables) `embeddings_project` to
//! the hidden width; and the backward of all that, down to the rows of the three tables.

use alloc::string::String;

use super::dropout::{self, Dropout};
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::model::{Batch, BertEmbeddings};

/// The position and token-type tables, or an error saying training needs them.
fn tables<'e>(
    e: &'e BertEmbeddings<'_>,
) -> Result<(&'e crate::nn::Embedding<'e>, &'e crate::nn::Embedding<'e>)> {
    let pe = e
        .position_embeddings
        .as_ref()
        .ok_or_else(|| Error::Unsupported {
            field: "position_embedding_type",
            value: String::from("none"),
            supported: "absolute",
        })?;
    let te = e
        .token_type_embeddings
        .as_ref()
        .ok_or_else(|| Error::Unsupported {
            field: "type_vocab_size",
            value: String::from("0"),
            supported: "at least 1",
        })?;
    Ok((pe, te))
}

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
    tables(e)?;
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
    if let Some(d) = hidden_dropout(ws.dropout) {
        let spec = (d.seed, dropout::EMBEDDINGS_STREAM, d.hidden);
        let mask = &mut ws.masks.embeddings[..t * w];
        threads::fill_rows(par, lanes, mask, &ws.packed[..t], w, spec);
        dropout::apply(x, mask);
    }
    if let Some(p) = &e.project {
        threads::linear_forward(par, p, &ws.emb_out[..t * w], t, &mut ws.x, &mut ws.lanes);
    }
    Ok(())
}

fn hidden_dropout(d: Option<Dropout>) -> Option<Dropout> {
    d.filter(|d| d.hidden > 0.0)
}

/// The backward of [`forward`] from `ws.dx` (`[t, hidden]`, the gradient of its output):
/// the projection's gradients into `project_slot`, `project_slot + 1` (when there is one),
/// then the LayerNorm's into slots 3 and 4 and the tables' rows into slots 0 to 2.
pub(crate) fn backward(
    e: &BertEmbeddings<'_>,
    batch: &Batch<'_>,
    t: usize,
    project_slot: usize,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let w = e.width();
    let par = ws.par;
    // With a projection the gradient of its input goes to `dctx` (free by now).
    let dy: &mut [f32] = match &e.project {
        Some(p) => {
            let (gw, gb) = grads.pair(project_slot, project_slot + 1);
            let weight = super::encoder::weight(p)?;
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
        None => &mut ws.dx[..t * w],
    };
    if hidden_dropout(ws.dropout).is_some() {
        dropout::apply(dy, &ws.masks.embeddings[..t * w]);
    }
    {
        let (gw, gb) = grads.pair(3, 4);
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
    for r in 0..t {
        let i = ws.packed[r] as usize;
        let de = &ws.da[r * w..(r + 1) * w];
        let id = batch.input_ids[i] as usize;
        let typ = batch.token_type_ids.map_or(0, |tt| tt[i]) as usize;
        for (slot, index) in [(0, id), (1, i % batch.seq_len), (2, typ)] {
            let g = &mut grads.slot(slot)[index * w..(index + 1) * w];
            g.iter_mut().zip(de).for_each(|(a, b)| *a += b);
        }
    }
    Ok(())
}
