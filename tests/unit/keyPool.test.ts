import { MemoryStore } from '../../providers/store/memory';
import { describeKeyPoolSuite } from './poolFixtures';

describeKeyPoolSuite('MemoryStore', () => new MemoryStore());
