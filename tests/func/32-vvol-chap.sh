#!/usr/bin/env bash
# Peer sessions with one-way CHAP: device 2 requires CHAP on its target; a vvol on device 1 with
# the right credentials (chap_file=, and the URL form iscsi://user%password@host:port/iqn/lun)
# serves I/O; a wrong password is refused at open with the reason in device 1's log; with
# chap_file the password appears nowhere in the log, and tandem never logs it itself.
. "$(dirname "$0")/functions.sh"

device_start d2 127.0.0.3
lu_add d2 1 raid "$(members "$WORK/m" 3 16M)" "volid=7;layout=2D+1P;create=1"
tgtadm_dev d2 --lld iscsi --op new --mode account --user tandem --password chap-secret-12
tgtadm_dev d2 --lld iscsi --op bind --mode account --tid 1 --user tandem
# without credentials the target refuses a login now
expect_fail "login without CHAP" "$TIO" info "$(device_url d2 1)"

device_start d1 127.0.0.2
url=$(device_url d2 1)
good="iscsi://tandem%chap-secret-12@${url#iscsi://}"
bad="iscsi://tandem%wrong-password@${url#iscsi://}"
printf 'tandem chap-secret-12\n' > "$WORK/chap"; chmod 600 "$WORK/chap"
printf 'tandem wrong-password\n' > "$WORK/chap.bad"
lu_add d1 1 vvol "$url" "volid=21;timeout_s=3;chap_file=$WORK/chap"
"$TIO" write "$(device_url d1 1)" --lba 0 --blocks 2048 --seed 12
"$TIO" verify "iscsi://tandem%chap-secret-12@${url#iscsi://}" --lba 0 --blocks 2048 --seed 12 ||
    fail "data written through the CHAP vvol is not on device 2"
expect_fail "a vvol with a wrong CHAP password" lu_add d1 2 vvol "$url" "volid=22;timeout_s=3;chap_file=$WORK/chap.bad"
log_has d1 "cannot open virtual volume: peer .* Authentication failure" || fail "no reason logged"
log "device 1 says: $(grep -o "cannot open virtual volume.*" "$(device_log d1)" | tail -1)"
grep -q "chap-secret-12\|wrong-password" "$(device_log d1)" && fail "a CHAP password reached the log"
# The URL form works too; tgtd logs its own LU parameters (the URL), tandem's lines redact it.
lu_add d1 3 vvol "$good" "volid=23;timeout_s=3"
grep "^tgtd: tandem: " "$(device_log d1)" | grep -q "chap-secret-12" && fail "tandem logged a CHAP password"
"$TIO" verify "$(device_url d1 3)" --lba 0 --blocks 2048 --seed 12
log "PASS: CHAP peer session serves I/O; a wrong password is refused with a reason"
