#!/bin/sh
# Prints the number of arguments, then each argument followed by a NUL byte,
# then the value of $DAY2_TEST_VALUE (if set) after a NUL, so a test can see
# exactly what argv and env reached the process.
printf '%s\0' "$#"
for a in "$@"; do
  printf '%s\0' "$a"
done
printf 'env:%s\0' "${DAY2_TEST_VALUE-<unset>}"
printf 'home:%s\0' "${HOME-<unset>}"
