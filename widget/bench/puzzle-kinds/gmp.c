/* `gmp <n> <x> <t>` (hex, hex, decimal): x^(2^t) mod n with GMP's mpz_powm, the best native
 * RSW solver at hand; five runs, prints the median milliseconds. */
#include <gmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  mpz_t n, x, y, e;
  mpz_inits(n, x, y, e, NULL);
  mpz_set_str(n, argv[1], 16);
  mpz_set_str(x, argv[2], 16);
  double ms[5];
  for (int run = 0; run < 5; run++) {
    double started = now_ms();
    mpz_ui_pow_ui(e, 2, strtoul(argv[3], NULL, 10));
    mpz_powm(y, x, e, n);
    ms[run] = now_ms() - started;
  }
  qsort(ms, 5, sizeof ms[0], compare);
  printf("%.2f\n", ms[2]);
  return 0;
}
