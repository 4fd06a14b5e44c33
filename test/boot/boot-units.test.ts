/** The boot stub's pure parts: boot config, USER resolution, which runtime mounts are carried, argv and env. */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootSettings, formatBootConfig, parseBootConfig, type BootConfig } from '../../src/boot/config.js';
import { mountsToCarry, parseMountInfo, resolveInRoot } from '../../src/boot/mounts.js';
import { appArgv, appEnv } from '../../src/boot/stub.js';
import { resolveUser } from '../../src/boot/user.js';
import { removeTree, tmpDir } from '../helpers/tools.js';

const config: BootConfig = {
  version: 1,
  bootfs: '0.1.0',
  index: '/bootfs/image.bootfs',
  stores: ['http://store:8080/'],
  cachePath: '/var/lib/bootfs/cache',
  app: { entrypoint: ['/docker-entrypoint.sh'], cmd: ['nginx', '-g', 'daemon off;'], env: ['PATH=/usr/bin'], workingDir: '/srv', user: 'www-data' },
  source: { reference: 'oci:/x:1' },
};

describe('boot config', () => {
  it('round-trips and is canonical', () => {
    const text = formatBootConfig(config);
    expect(parseBootConfig(text, 'boot.json')).toEqual(config);
    expect(formatBootConfig({ ...config, app: { user: 'www-data', workingDir: '/srv', env: ['PATH=/usr/bin'], cmd: config.app.cmd!, entrypoint: config.app.entrypoint! } })).toBe(text);
  });

  it.each([
    ['not json', '{'],
    ['an array', '[]'],
    ['a newer version', JSON.stringify({ ...config, version: 2 })],
    ['a relative index', JSON.stringify({ ...config, index: 'image.bootfs' })],
    ['stores not strings', JSON.stringify({ ...config, stores: [1] })],
    ['a bad cmd', JSON.stringify({ ...config, app: { cmd: 'sh' } })],
    ['a bad source', JSON.stringify({ ...config, source: { a: 1 } })],
  ])('refuses %s, naming the file', (_, text) => {
    expect(() => parseBootConfig(text, '/bootfs/boot.json')).toThrow(/\/bootfs\/boot\.json/);
  });

  it('takes overrides from the environment', () => {
    expect(bootSettings(config, {})).toEqual({ stores: ['http://store:8080/'], cachePath: '/var/lib/bootfs/cache' });
    expect(bootSettings(config, { BOOTFS_STORE: 'http://a/, sftp://b/x', BOOTFS_CACHE: '/c', BOOTFS_TIMEOUT: '5s', BOOTFS_CACHE_MAX_SIZE: '1G', BOOTFS_UPPER: '/data' })).toEqual({
      stores: ['http://a/', 'sftp://b/x'],
      cachePath: '/c',
      timeout: '5s',
      cacheMaxSize: '1G',
      upperDir: '/data',
    });
  });
});

describe('argv and env of the app', () => {
  it('container args replace cmd, not the entrypoint', () => {
    expect(appArgv(config, [])).toEqual(['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']);
    expect(appArgv(config, ['sh', '-c', 'id'])).toEqual(['/docker-entrypoint.sh', 'sh', '-c', 'id']);
    expect(appArgv({ ...config, app: { cmd: ['sh'] } }, [])).toEqual(['sh']);
    expect(() => appArgv({ ...config, app: {} }, [])).toThrow(/no entrypoint and no cmd/);
  });

  it('drops BOOTFS_ settings and fills HOME and PATH', () => {
    expect(appEnv({ BOOTFS_STORE: 'x', FOO: 'bar', PATH: '/bin' }, '/home/u')).toEqual({ FOO: 'bar', PATH: '/bin', HOME: '/home/u' });
    expect(appEnv({ HOME: '/root' }, '/home/u').HOME).toBe('/root');
    expect(appEnv({}, undefined).PATH).toContain('/usr/bin');
  });
});

describe('USER resolution from the image', () => {
  let root: string;
  beforeAll(async () => {
    root = await tmpDir('bootfs-user-');
    await mkdir(path.join(root, 'etc'));
    await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\nbroken line\n');
    await writeFile(path.join(root, 'etc/group'), 'root:x:0:\nwww-data:x:33:\napp:x:1000:\nstaff:x:50:app,www-data\naudio:x:29:app\n');
  });
  afterAll(async () => removeTree(root));

  it('resolves names, numbers and groups as docker does', async () => {
    expect(await resolveUser(root, undefined)).toEqual({ uid: 0, gid: 0, groups: [], home: '/root' });
    expect(await resolveUser(root, 'app')).toEqual({ uid: 1000, gid: 1000, groups: [50, 29], home: '/home/app' });
    expect(await resolveUser(root, 'www-data:staff')).toEqual({ uid: 33, gid: 50, groups: [], home: '/var/www' });
    expect(await resolveUser(root, '1000:29')).toMatchObject({ uid: 1000, gid: 29 });
    expect(await resolveUser(root, '4242')).toEqual({ uid: 4242, gid: 0, groups: [] });
    await expect(resolveUser(root, 'nobody')).rejects.toThrow(/unable to find user nobody/);
    await expect(resolveUser(root, 'app:nogroup')).rejects.toThrow(/unable to find group nogroup/);
  });
});

describe('runtime mounts carried into the app root', () => {
  const mountinfo = [
    '600 500 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l',
    '601 600 0:51 / /proc rw,nosuid - proc proc rw',
    '602 600 0:52 / /dev rw,nosuid - tmpfs tmpfs rw',
    '603 602 0:53 / /dev/shm rw - tmpfs shm rw',
    '604 600 0:54 / /sys ro - sysfs sysfs ro',
    '605 600 8:1 /containers/abc/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw',
    '606 600 8:1 /containers/abc/hosts /etc/hosts rw - ext4 /dev/vda rw',
    '607 600 8:1 /vols/data /data rw - ext4 /dev/vda rw',
    '608 600 8:1 /vols/conf /etc/my\\040app ro - ext4 /dev/vda rw',
    '609 600 8:1 /cache /var/lib/bootfs/cache rw - ext4 /dev/vda rw',
    '610 600 0:60 / /bootfs/lower ro - fuse.bootfs bootfs ro',
    '611 600 8:1 /vols/data2 /data rw - ext4 /dev/vda rw',
  ].join('\n');

  it('parses mountinfo with escapes', () => {
    const all = parseMountInfo(mountinfo);
    expect(all).toHaveLength(12);
    expect(all[8]).toMatchObject({ mountPoint: '/etc/my app', root: '/vols/conf', options: ['ro'], fsType: 'ext4' });
  });

  it('carries volumes and runtime files, not /proc /sys /dev, bootfs or the cache; the last mount on a path wins', () => {
    const carried = mountsToCarry(parseMountInfo(mountinfo), ['/bootfs', '/var/lib/bootfs/cache']).map((m) => [m.mountPoint, m.root]);
    expect(carried).toEqual([
      ['/etc/resolv.conf', '/containers/abc/resolv.conf'],
      ['/etc/hosts', '/containers/abc/hosts'],
      ['/etc/my app', '/vols/conf'],
      ['/data', '/vols/data2'],
    ]);
  });
});

describe('mount targets resolved inside the new root', () => {
  let root: string;
  beforeAll(async () => {
    root = await tmpDir('bootfs-root-');
    await mkdir(path.join(root, 'etc'), { recursive: true });
    await mkdir(path.join(root, 'real'), { recursive: true });
    await symlink('/run/elsewhere/hosts', path.join(root, 'etc/hosts'));
    await symlink('../../../../real', path.join(root, 'up'));
    await symlink('loop2', path.join(root, 'loop1'));
    await symlink('loop1', path.join(root, 'loop2'));
  });
  afterAll(async () => removeTree(root));

  it('follows links as a chroot would: absolute targets restart at the root, .. stops there', async () => {
    expect(await resolveInRoot(root, '/etc/hosts')).toBe(path.join(root, 'run/elsewhere/hosts'));
    expect(await resolveInRoot(root, '/up/x')).toBe(path.join(root, 'real/x'));
    expect(await resolveInRoot(root, '/../../etc/./resolv.conf')).toBe(path.join(root, 'etc/resolv.conf'));
    await expect(resolveInRoot(root, '/loop1/x')).rejects.toThrow(/too many levels/);
  });
});
