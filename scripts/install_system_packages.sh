#!/usr/bin/env bash
# Debian packages the synthetic corpus needs: espeak-ng, flite and festival with two diphone voices (the
# synthesizers) and fortunes (English text); festival's HTS voice is for recipes/synth-en/unseen_source_test.py only,
# wamerican (a word list) for the shipped model's LM.
# Installs them when missing, as root or through sudo; elsewhere it says what to install and goes on
# (everything but `stochw2v synth` works without them, and its tests are skipped with that reason).
set -u
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v flite >/dev/null 2>&1 || need+=(flite)
command -v text2wave >/dev/null 2>&1 || need+=(festival)
[ -d /usr/share/festival/voices/english/kal_diphone ] || need+=(festvox-kallpc16k)
[ -d /usr/share/festival/voices/english/ked_diphone ] || need+=(festvox-kdlpc16k)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || need+=(festvox-us-slt-hts)
[ -e /usr/share/games/fortunes/wisdom ] || need+=(fortunes)
[ -e /usr/share/dict/american-english ] || need+=(wamerican)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else sudo=none; fi
if [ "$sudo" != none ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} with apt-get"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null \
    && exit 0
fi
echo "warning: could not install ${need[*]}; install them to use 'stochw2v synth'" >&2
exit 0
