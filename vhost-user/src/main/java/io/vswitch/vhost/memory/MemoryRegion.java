package io.vswitch.vhost.memory;

import io.vswitch.sys.Libc;
import io.vswitch.sys.SysCallException;
import io.vswitch.sys.MappedMemory;
import io.vswitch.sys.SharedMemory;

import java.lang.foreign.MemorySegment;

/**
 * One region of guest RAM, mapped from the descriptor that came with SET_MEM_TABLE or ADD_MEM_REG.
 *
 * <p>The file is mapped from offset 0 for {@code mmapOffset + size} bytes and the region starts at
 * {@code mmapOffset} in it, because mmap needs a page-aligned (for hugetlbfs: huge-page-aligned) file
 * offset while the frontend's offset need not be.
 */
public final class MemoryRegion implements AutoCloseable {
    private final long guestPhysAddr;
    private final long size;
    private final long userAddr;
    private final long mmapOffset;
    private final MappedMemory mapping;
    private final MemorySegment segment;

    private MemoryRegion(long guestPhysAddr, long size, long userAddr, long mmapOffset, MappedMemory mapping) {
        this.guestPhysAddr = guestPhysAddr;
        this.size = size;
        this.userAddr = userAddr;
        this.mmapOffset = mmapOffset;
        this.mapping = mapping;
        this.segment = mapping.segment().asSlice(mmapOffset, size);
    }

    /**
     * Validates the frontend's numbers against the file behind {@code fd} and maps it. The descriptor is
     * always closed before this returns: the mapping keeps the memory alive on its own.
     */
    public static MemoryRegion map(int fd, long guestPhysAddr, long size, long userAddr, long mmapOffset) {
        try {
            if (size <= 0) {
                throw new GuestMemoryException("region size " + Long.toUnsignedString(size) + " is not positive");
            }
            if (mmapOffset < 0 || mmapOffset + size < 0) {
                throw new GuestMemoryException("region mmap_offset " + Long.toUnsignedString(mmapOffset) + " + size overflows");
            }
            if (guestPhysAddr + size != 0 && Long.compareUnsigned(guestPhysAddr + size, guestPhysAddr) < 0) {
                throw new GuestMemoryException("guest-physical range overflows: 0x" + Long.toHexString(guestPhysAddr));
            }
            if (userAddr + size != 0 && Long.compareUnsigned(userAddr + size, userAddr) < 0) {
                throw new GuestMemoryException("frontend-virtual range overflows: 0x" + Long.toHexString(userAddr));
            }
            if (!SharedMemory.isRegularFile(fd)) {
                throw new GuestMemoryException("region descriptor " + fd + " is not a memory file");
            }
            long fileSize = SharedMemory.size(fd);
            if (fileSize < mmapOffset + size) {
                throw new GuestMemoryException("region needs " + (mmapOffset + size) + " bytes but its file has " + fileSize);
            }
            MappedMemory mapping = SharedMemory.map(fd, mmapOffset + size, 0);
            return new MemoryRegion(guestPhysAddr, size, userAddr, mmapOffset, mapping);
        } catch (SysCallException e) {
            throw new GuestMemoryException(e.getMessage());
        } finally {
            Libc.closeQuietly(fd);
        }
    }

    public long guestPhysAddr() {
        return guestPhysAddr;
    }

    public long size() {
        return size;
    }

    public long userAddr() {
        return userAddr;
    }

    public long mmapOffset() {
        return mmapOffset;
    }

    public MemorySegment segment() {
        return segment;
    }

    public boolean isMapped() {
        return mapping.isMapped();
    }

    @Override
    public void close() {
        mapping.close();
    }

    @Override
    public String toString() {
        return String.format("[guest 0x%x, size 0x%x, user 0x%x, offset 0x%x]", guestPhysAddr, size, userAddr, mmapOffset);
    }
}
