//! Weights packed once, ahead of the products, into the panels of the instruction set in use
//! ([`PackedWeight`]): f32, int8 or bf16 panels, as [`super::gemm`]'s drivers read them.

use alloc::vec;
use alloc::vec::Vec;

use super::gemm::{pack_column_block_f32, round_up, Rhs, KC, NC};
use super::int8::{pack_column_block_i8, I8Weight};
use super::isa::{Isa, I8_K_GROUP};
use crate::tensor::{Matrix, Storage};

/// A weight `W [n, k]` packed once into the panels of the instruction set in use, so
/// products skip packing — what ONNX Runtime calls pre-packing. f32, f16 and bf16 weights
/// become f32 panels (`k · n` f32 of memory); int8 weights become int8 panels (`k · n` bytes)
/// with their scales.
#[derive(Debug, Clone)]
pub struct PackedWeight {
    pub(super) panels: Panels,
    pub(super) n: usize,
    k: usize,
    nr: usize,
    /// int8 weights stored as `w + 128` (see [`Isa::i8_unsigned_weights`]).
    unsigned: bool,
}

/// The panels of a [`PackedWeight`], by the products they feed.
#[derive(Debug, Clone)]
pub(super) enum Panels {
    /// f32 panels ([`pack_column_block_f32`]).
    F32(Vec<f32>),
    /// int8 panels ([`pack_column_block_i8`]) and one scale per output channel.
    I8 { values: Vec<i8>, scales: Vec<f32> },
    /// bf16 panels ([`super::bf16::pack_weight`]): products run in bf16 with f32 sums.
    Bf16(Vec<u16>),
}

/// What the products of a [`PackedWeight`] compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// As stored: f32 products for f32 / f16 / bf16 weights (widened), int8 for int8 ones.
    #[default]
    Stored,
    /// bf16 products with f32 sums (`vdpbf16ps` where the CPU has AVX512-BF16, a portable
    /// kernel elsewhere) for float weights; int8 weights stay int8.
    Bf16,
}

impl PackedWeight {
    /// Pack `weight` for the kernels of [`super::isa::isa`].
    pub fn new(weight: &Matrix<'_>) -> Self {
        Self::with_isa(super::isa::isa(), weight)
    }

    /// Pack `weight` for the kernels of `isa`.
    pub fn with_isa(isa: &dyn Isa, weight: &Matrix<'_>) -> Self {
        Self::with_precision(isa, weight, Precision::Stored)
    }

    /// Pack `weight` for the kernels of `isa`, for products in `precision`.
    pub fn with_precision(isa: &dyn Isa, weight: &Matrix<'_>, precision: Precision) -> Self {
        let (n, k) = (weight.rows, weight.cols);
        let int8 = matches!(weight.storage, Storage::I8 { .. });
        if precision == Precision::Bf16 && !int8 {
            let nr = isa.bf16_tile().1;
            return PackedWeight {
                panels: Panels::Bf16(super::bf16::pack_weight(weight, nr)),
                n,
                k,
                nr,
                unsigned: false,
            };
        }
        if let Storage::I8 { values, scales } = &weight.storage {
            let nr = isa.i8_tile().1;
            let unsigned = isa.i8_unsigned_weights();
            let depth = round_up(k, I8_K_GROUP);
            let mut packed = vec![0; round_up(n, nr) * depth];
            for jc in (0..n).step_by(NC) {
                let nc = NC.min(n - jc);
                let block = &mut packed[jc * depth..jc * depth + round_up(nc, nr) * depth];
                pack_column_block_i8(values, k, jc, nc, nr, unsigned, block);
            }
            let panels = Panels::I8 {
                values: packed,
                scales: scales.to_vec(),
            };
            return PackedWeight {
                panels,
                n,
                k,
                nr,
                unsigned,
            };
        }
        let nr = isa.f32_tile().1;
        let mut data = vec![0.0; round_up(n, nr) * k];
        let mut row = vec![0.0; KC];
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            let block = &mut data[jc * k..jc * k + round_up(nc, nr) * k];
            pack_column_block_f32(Rhs::WeightT(weight), k, jc, nc, nr, block, &mut row);
        }
        PackedWeight {
            panels: Panels::F32(data),
            n,
            k,
            nr,
            unsigned: false,
        }
    }

    /// The packed f32 columns `jc..jc + NC` (`jc` a multiple of [`NC`]), all depth blocks.
    pub(super) fn column_block(&self, jc: usize) -> &[f32] {
        let Panels::F32(data) = &self.panels else {
            return &[];
        };
        let width = round_up(NC.min(self.n - jc), self.nr);
        let start = jc * self.k;
        &data[start..start + width * self.k]
    }

    /// `(k, n)`: the depth and width of `Wᵀ`.
    pub fn shape_kn(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The int8 driver's view of int8 panels; `None` for f32 panels.
    pub(super) fn int8(&self) -> Option<I8Weight<'_>> {
        match &self.panels {
            Panels::I8 { values, scales } => Some(I8Weight {
                values,
                scales,
                packed: true,
                unsigned: self.unsigned,
            }),
            Panels::F32(_) | Panels::Bf16(_) => None,
        }
    }

    /// What this packing's products compute in.
    pub fn precision(&self) -> Precision {
        match self.panels {
            Panels::Bf16(_) => Precision::Bf16,
            _ => Precision::Stored,
        }
    }

    /// Whether the kernels of `isa` read this packing.
    pub fn fits(&self, isa: &dyn Isa) -> bool {
        match self.panels {
            Panels::F32(_) => isa.f32_tile().1 == self.nr,
            Panels::I8 { .. } => {
                isa.i8_tile().1 == self.nr && isa.i8_unsigned_weights() == self.unsigned
            }
            Panels::Bf16(_) => isa.bf16_tile().1 == self.nr,
        }
    }

    /// Bytes held.
    pub fn size_in_bytes(&self) -> usize {
        match &self.panels {
            Panels::F32(d) => 4 * d.len(),
            Panels::I8 { values, scales } => values.len() + 4 * scales.len(),
            Panels::Bf16(d) => 2 * d.len(),
        }
    }
}
