//! The activation functions a config can name: plain data that the kernels take as it is (a
//! leaf module, so that the kernels do not depend on the config).

/// The hidden activation (`hidden_act`), as HF's `ACT2FN` defines each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: exact, `0.5 x (1 + erf(x / sqrt 2))`.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `relu`.
    Relu,
    /// `silu` / `swish`: `x sigmoid(x)`.
    Silu,
}

impl Activation {
    /// The names HF uses for the supported activations.
    pub const SUPPORTED: &'static str = "gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish";

    /// Map an HF `hidden_act` name.
    pub fn from_hf(name: &str) -> Option<Activation> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            _ => return None,
        })
    }
}
