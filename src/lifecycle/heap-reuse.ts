/** Bytes of the block whose release raises glibc's thresholds: just under glibc's cap on 64-bit (32 MiB). */
const THRESHOLD_BLOCK_BYTES = 32 * 1024 * 1024 - 64 * 1024;

/**
 * Makes glibc's malloc keep freed memory for reuse instead of handing it back to
 * the kernel and faulting it in again (issue 5; profile: 16 KiB echo spent ~15%
 * of the server's CPU in page faults, brk and page clearing).
 *
 * Why: Node allocates every socket read (64 KiB, shrunk to the bytes read) with
 * malloc, and V8 frees them only when a scavenge collects their ArrayBuffers,
 * which it forces once ~32 MiB of young ArrayBuffers have piled up. A server
 * that allocates little JavaScript per message, like wshub, reaches that point
 * first: each cycle frees ~32 MiB at the top of glibc's heap at once, glibc trims
 * it (M_TRIM_THRESHOLD starts at 128 KiB) and the next reads fault every page
 * back in (up to 4 page faults per 16 KiB message).
 *
 * How: glibc raises M_MMAP_THRESHOLD to the size of a freed mmap()ed block
 * (up to 32 MiB on 64-bit) and M_TRIM_THRESHOLD to twice that (mallopt(3),
 * "dynamic mmap threshold"). Node has no mallopt; allocating one such block with
 * malloc (an ArrayBuffer) and letting the next garbage collection free it does the
 * same. From then on up to ~64 MiB of freed memory stays mapped for reuse, and
 * blocks up to 32 MiB come from the heap instead of their own mapping. Other C
 * libraries (musl) do not adjust: the block is mapped, freed, and nothing changes.
 * Its pages are never touched, so it costs no resident memory.
 */
export function keepFreedMemoryForReuse(): void {
  // allocUnsafeSlow: its own ArrayBuffer (malloc), not a slice of Buffer's pool, and not zero-filled.
  Buffer.allocUnsafeSlow(THRESHOLD_BLOCK_BYTES);
}
