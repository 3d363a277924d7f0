//! Seat-map fixtures shared by the benches.

/// A rush in progress: 70 % available, 20 % sold, 10 % held, spread by a
/// fixed pseudo-random sequence.
pub fn seat_states(seats: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..seats)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match x % 10 {
                0 => b'H',
                1 | 2 => b'S',
                _ => b'A',
            }
        })
        .collect()
}
