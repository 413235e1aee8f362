// Python's round(x, digits) in JavaScript, so that the page's numbers are the server's to the
// last digit: the decimal nearest to x's exact binary value, and an exact tie to the even one.
// (toFixed also rounds the exact value, but sends ties away from zero: 0.0078125 to 6 digits
// gives 0.007813 where Python gives 0.007812.)

// x is exactly halfway between two decimals of `digits` places only when x * 2^(digits + 1) is
// an odd integer (x * 2 * 10^digits odd, with x a binary fraction); that product is exact.
export function pythonRound(x, digits = 0) {
  const half = x * 2 ** (digits + 1);
  if (!Number.isInteger(half) || half % 2 === 0) return Number(x.toFixed(digits));
  const twice = BigInt(half) * 5n ** BigInt(digits); // 2 * x * 10^digits, an odd integer
  const below = (twice - 1n) / 2n; // the two candidates are below and below + 1
  const even = below % 2n === 0n ? below : below + 1n;
  return Number(`${even}e-${digits}`);
}
