import { MemoryStore } from '../../src/store/memory-store.js';
import { describeRoomStore } from '../support/store-contract.js';

describeRoomStore('MemoryStore', async () => new MemoryStore());
