/** RFC 3261 timer values (section 17 and Table 4), in milliseconds. */
export const T1 = 500;
export const T2 = 4000;
/** T4: how long a message may stay in the network (RFC 3261 17.1.2.2). */
export const T4 = 5000;
/** Timer F: non-INVITE client transaction timeout. */
export const TIMER_F = 64 * T1;
/** Timer B: INVITE client transaction timeout. */
export const TIMER_B = 64 * T1;
/** Timer D: how long an INVITE client transaction absorbs a retransmitted non-2xx final on UDP (> 32 s). */
export const TIMER_D_UNRELIABLE = 32_000;
/**
 * Timer M (RFC 6026 7.2): how long an INVITE client transaction that got a
 * 2xx keeps passing further 2xx (retransmissions, other forks) to the dialog.
 */
export const TIMER_M = 64 * T1;
/** Timer H: how long a UAS waits for the ACK of its final response (also 13.3.1.4 for 2xx). */
export const TIMER_H = 64 * T1;
/** Timer J: how long a non-INVITE server transaction absorbs retransmissions (unreliable transports). */
export const TIMER_J = 64 * T1;
/** Timer L (RFC 6026 8.7): how long an INVITE server transaction that sent a 2xx absorbs the INVITE's retransmissions. */
export const TIMER_L = 64 * T1;
