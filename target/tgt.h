/* tgt's headers, in the order they need each other (they are not self-contained). The only
 * place that names them (target/ only). */
#ifndef TANDEM_TARGET_TGT_H
#define TANDEM_TARGET_TGT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "list.h"
#include "util.h"
#include "tgtd.h"
#include "scsi.h"
#include "spc.h"
#include "bs_thread.h"
#include "tgtadm_error.h"
#include "target.h"

#endif
