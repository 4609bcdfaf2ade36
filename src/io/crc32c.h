/* Internal: CRC-32C (Castagnoli), the checksum of TFRecord framing.
 *
 * TensorBoard's event files frame every record with a "masked" CRC-32C of
 * its length and of its data (tfevents.c). The plain CRC is the iSCSI one
 * (RFC 3720: reflected polynomial 0x82F63B78, initial value and final XOR
 * 0xFFFFFFFF; "123456789" gives 0xE3069283); the mask rotates it right by
 * 15 bits and adds 0xA282EAD8, so that a CRC stored inside data that is
 * itself checksummed does not cancel out. */
#ifndef CT_IO_CRC32C_H
#define CT_IO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of n bytes; crc32c_extend continues a CRC over more bytes
 * (ct_crc32c(ab) == ct_crc32c_extend(ct_crc32c(a), b)). */
uint32_t ct_crc32c(const void *data, size_t n);
uint32_t ct_crc32c_extend(uint32_t crc, const void *data, size_t n);
/* TFRecord's masked form of a CRC. */
uint32_t ct_crc32c_mask(uint32_t crc);

#endif
