//! Guest instructions, counted with SysTick. Under QEMU with `-icount shift=0` every guest
//! instruction advances virtual time by 1 ns, and SysTick counts the core clock in that time;
//! a loop of known length calibrates ticks to instructions, whatever clock the board model
//! gives the core.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// SysTick wraps (every 2^24 ticks).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Starts SysTick on the core clock, wrapping every 2^24 ticks.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Core-clock ticks since [`start`].
pub fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) * (1 << 24) + u64::from(0x00FF_FFFF - current);
        }
    }
}

/// Guest instructions per 1,000 SysTick ticks, from a loop of two instructions per turn.
pub fn instructions_per_kilotick() -> u64 {
    const TURNS: u32 = 1_000_000;
    let start = ticks();
    // SAFETY: a register-only countdown loop; touches no memory and no stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) TURNS => _,
            options(nomem, nostack)
        );
    }
    let spent = (ticks() - start).max(1);
    2 * u64::from(TURNS) * 1000 / spent
}
