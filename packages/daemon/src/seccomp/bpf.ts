/**
 * A small classic-BPF assembler for seccomp filters (the format bwrap's --seccomp reads:
 * an array of struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }, little-endian).
 */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K = 0x06; // BPF_RET | BPF_K

export const RET_ALLOW = 0x7fff0000;
export const RET_KILL_PROCESS = 0x80000000;
export const retErrno = (errno: number) => 0x00050000 | (errno & 0xffff);

/** Offsets into struct seccomp_data. */
export const DATA_NR = 0;
export const DATA_ARCH = 4;
/** Low 32 bits of syscall argument `i` (little-endian u64 at 16 + 8i). */
export const argLow = (i: number) => 16 + 8 * i;
/** High 32 bits of syscall argument `i`. */
export const argHigh = (i: number) => 20 + 8 * i;

export const ld = (offset: number): Insn => ({ code: LD_W_ABS, jt: 0, jf: 0, k: offset });
export const ret = (value: number): Insn => ({ code: RET_K, jt: 0, jf: 0, k: value >>> 0 });
export const jeq = (k: number, jt: number, jf: number): Insn => ({ code: JEQ_K, jt, jf, k: k >>> 0 });
export const jge = (k: number, jt: number, jf: number): Insn => ({ code: JGE_K, jt, jf, k: k >>> 0 });
export const jset = (k: number, jt: number, jf: number): Insn => ({ code: JSET_K, jt, jf, k: k >>> 0 });

/** Serialises a program, checking that every jump lands inside it. */
export function assemble(program: Insn[]): Buffer {
  if (program.length === 0 || program.length > 4096) throw new Error(`BPF program of ${program.length} instructions`);
  const out = Buffer.alloc(program.length * 8);
  program.forEach((insn, i) => {
    if (insn.jt > 255 || insn.jf > 255) throw new Error(`jump too far at instruction ${i}`);
    if ((insn.code & 0x07) === 0x05 && (i + 1 + insn.jt >= program.length || i + 1 + insn.jf >= program.length)) {
      throw new Error(`jump out of the program at instruction ${i}`);
    }
    out.writeUInt16LE(insn.code, i * 8);
    out.writeUInt8(insn.jt, i * 8 + 2);
    out.writeUInt8(insn.jf, i * 8 + 3);
    out.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  const last = program[program.length - 1]!;
  if (last.code !== RET_K) throw new Error("a BPF program must end in a return");
  return out;
}
